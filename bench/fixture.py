"""The benchmark's database: pgbench tables plus two tables of text, generated server-side.

At the default scale (50) this is the 1.65 GB fixture of the performance issue: pgbench scale 50,
`words` (2 M rows: an md5 and 40 repeated letters, indexed on a timestamp) and `attempts` (4 M rows:
three random md5s, an int, a float, a timestamp, indexed on the int). Every table grows linearly
with the scale, so smaller scales give the same mix of compressible and random data.
"""

from __future__ import annotations

import subprocess

from jobs.local.postgres import SUPERUSER, LocalPostgres

WORDS_PER_SCALE = 40_000
ATTEMPTS_PER_SCALE = 80_000

# Durable settings for the server under test: the local server starts non-durable (fast tests),
# but a backup or restore of a live database must be measured against fsync'd commits and full
# page writes, as in production. All three can change on reload.
DURABLE = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}


TABLES_SQL = """
CREATE TABLE words (
    word text NOT NULL,
    filler text NOT NULL,
    created_at timestamptz NOT NULL
);
INSERT INTO words
SELECT md5(i::text), repeat(chr(97 + i % 26), 40), '2026-01-01'::timestamptz - i * interval '1 s'
FROM generate_series(1, {words}) AS i;
CREATE INDEX words_created_at ON words (created_at);

CREATE TABLE attempts (
    a text NOT NULL,
    b text NOT NULL,
    c text NOT NULL,
    n integer NOT NULL,
    score double precision NOT NULL,
    at timestamptz NOT NULL
);
INSERT INTO attempts
SELECT md5(random()::text), md5(random()::text), md5(random()::text),
       (random() * 1000000)::int, random(),
       '2026-01-01'::timestamptz - (random() * 1e8) * interval '1 s'
FROM generate_series(1, {attempts});
CREATE INDEX attempts_n ON attempts (n);
"""


def _tables_sql(scale: int) -> str:
    return TABLES_SQL.format(words=WORDS_PER_SCALE * scale, attempts=ATTEMPTS_PER_SCALE * scale)


def generate(pg: LocalPostgres, database: str, scale: int) -> None:
    """Create `database` on `pg` and fill it at `scale` (pgbench generates its rows server-side)."""
    pg.psql(f'CREATE DATABASE "{database}"')
    subprocess.run(
        [
            str(pg.bindir / "pgbench"),
            "-h", str(pg.sockets), "-p", str(pg.port), "-U", SUPERUSER,
            "-i", "-q", "-s", str(scale), "-I", "dtGvp", database,
        ],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    pg.psql(_tables_sql(scale), database)
    # As a live database would be: visibility map set, hint bits written, statistics known.
    pg.psql("VACUUM (ANALYZE, FREEZE) words, attempts", database)


def make_durable(pg: LocalPostgres) -> None:
    """Turn the server durable (as a production server is) before anything is timed."""
    for name, value in DURABLE.items():
        pg.psql(f"ALTER SYSTEM SET {name} = '{value}'")
    pg.psql("SELECT pg_reload_conf()")
    pg.psql("CHECKPOINT")


def database_bytes(pg: LocalPostgres, database: str) -> int:
    return int(pg.psql(f"SELECT pg_database_size('{database}')"))
