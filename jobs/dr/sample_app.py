"""A small copy of the guide's vocabulary app: users, word lists, words, test attempts.

Enough rows (a few thousand) and enough variety (non-ASCII words, foreign keys, indexes, a setting
on the database) that a restore which drops or garbles anything shows up in the checks.
"""

from __future__ import annotations

from jobs.local.postgres import LocalPostgres

# Words the app's users learn; several scripts, so encoding mistakes cannot hide.
_WORDS_TEXT = (
    "Straße naïve café über żółć ĉiutage smørbrød façade jalapeño "
    "日本語 学生 слово ελπίδα مرحبا שלום खाना ありがとう 안녕하세요"
)
WORDS = tuple(_WORDS_TEXT.split())

SCHEMA = """
CREATE TABLE users (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email       text NOT NULL UNIQUE,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE word_lists (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title       text NOT NULL,
    language    text NOT NULL
);
CREATE TABLE words (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    list_id     bigint NOT NULL REFERENCES word_lists (id) ON DELETE CASCADE,
    term        text NOT NULL,
    translation text NOT NULL
);
CREATE INDEX words_term_idx ON words (term);
CREATE TABLE test_attempts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    list_id     bigint NOT NULL REFERENCES word_lists (id) ON DELETE CASCADE,
    score       numeric(5, 2) NOT NULL CHECK (score BETWEEN 0 AND 100),
    taken_at    timestamptz NOT NULL
);
CREATE INDEX test_attempts_user_taken_idx ON test_attempts (user_id, taken_at);
"""


def load_sql(users: int = 200, lists: int = 400, words: int = 3000, attempts: int = 2000) -> str:
    """The schema and deterministic rows (the same data on every run)."""
    word_array = "ARRAY[" + ", ".join(f"'{w}'" for w in WORDS) + "]"
    n = len(WORDS)
    # Only integers and the constant words above are interpolated.
    rows = f"""
INSERT INTO users (email, name, created_at)
SELECT 'user' || i || '@example.com', 'Learner ' || i,
       '2026-01-01'::timestamptz + i * interval '1 hour'
FROM generate_series(1, {users}) AS i;
INSERT INTO word_lists (owner_id, title, language)
SELECT 1 + (i % {users}), 'List ' || i, (ARRAY['de', 'fr', 'ja', 'ru', 'el', 'ar'])[1 + i % 6]
FROM generate_series(1, {lists}) AS i;
INSERT INTO words (list_id, term, translation)
SELECT 1 + (i % {lists}), ({word_array})[1 + i % {n}] || ' ' || i, 'meaning ' || i
FROM generate_series(1, {words}) AS i;
INSERT INTO test_attempts (user_id, list_id, score, taken_at)
SELECT 1 + (i % {users}), 1 + (i % {lists}), (i * 37) % 101,
       '2026-01-10'::timestamptz + i * interval '7 minutes'
FROM generate_series(1, {attempts}) AS i;
ANALYZE;
"""  # noqa: S608
    return SCHEMA + rows


def create_sample_database(server: LocalPostgres, database: str) -> dict[str, int]:
    """Create `database` on `server`, fill it, and return the row count of each table."""
    server.psql(f'CREATE DATABASE "{database}" TEMPLATE template0 ENCODING UTF8')
    server.psql(f"ALTER DATABASE \"{database}\" SET statement_timeout = '60s'")
    server.psql(load_sql(), database)
    return row_counts(server, database)


def row_counts(server: LocalPostgres, database: str) -> dict[str, int]:
    counts = {}
    for table in ("users", "word_lists", "words", "test_attempts"):
        counts[table] = int(server.psql(f"SELECT count(*) FROM {table}", database))  # noqa: S608
    return counts
