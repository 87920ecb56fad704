"""Helpers of the in-container PostgreSQL step tests: run a script, read its summary, dump a
database to compare, find a step's processes, and a database rich enough to round-trip."""

# SQL here is built from names the tests generate themselves (t_<hex>): nothing to inject.
# ruff: noqa: S608

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from jobs.local.postgres import SUPERUSER, LocalPostgres

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "jobs" / "scripts"


def script_env(
    pg: LocalPostgres, base_env: Mapping[str, str], database: str, backup_dir: Path, **extra: str
) -> dict[str, str]:
    """The contract's environment for one database: libpq, BACKUP_DIR, small DUMP_JOBS."""
    env = dict(base_env)
    env.update(pg.env(database))
    env.update({"BACKUP_DIR": str(backup_dir), "DUMP_JOBS": "2"})
    env.update(extra)
    return env


def run_script(
    name: str, env: Mapping[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPTS / name)],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def start_script(name: str, env: Mapping[str, str]) -> subprocess.Popen[str]:
    """A script in a session of its own, so the whole step (script and children) can be killed."""
    return subprocess.Popen(
        ["bash", str(SCRIPTS / name)],
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        stdin=subprocess.DEVNULL,
    )


def kill_step(process: subprocess.Popen[str]) -> None:
    """SIGKILL the script and everything it started: what a killed pod does to the step."""
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)


def summary(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The one-line JSON summary: the last line on stdout."""
    lines = result.stdout.strip().splitlines()
    assert lines, f"no summary on stdout; stderr:\n{result.stderr}"
    parsed: dict[str, Any] = json.loads(lines[-1])
    return parsed


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if "ERROR: " in line]
    assert lines, f"no ERROR line; stderr:\n{result.stderr}"
    return lines[-1]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def pg_dump_text(pg: LocalPostgres, database: str, *args: str) -> str:
    """pg_dump's plain output of a database: the yardstick for "identical after restore"."""
    out = subprocess.run(
        [str(pg.bindir / "pg_dump"), "-h", str(pg.sockets), "-p", str(pg.port), "-U", SUPERUSER,
         "--no-sync", *args, database],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    # \restrict carries a random key per run (pg_dump 15.14+): not part of the database.
    return "".join(
        line
        for line in out.stdout.splitlines(keepends=True)
        if not line.startswith(("\\restrict ", "\\unrestrict "))
    )


def restore_copy(
    pg: LocalPostgres, env: Mapping[str, str], database: str, **extra: str
) -> subprocess.CompletedProcess[str]:
    """restore.sh of DATABASE's latest set into a new `<database>_copy` (env plus `extra`); the
    restore succeeds and the copy dumps exactly as the original."""
    copy = f"{database}_copy"
    restore = run_script("restore.sh", {**env, "TARGET_DATABASE": copy, **extra})
    assert restore.returncode == 0, restore.stderr
    assert pg_dump_text(pg, copy) == pg_dump_text(pg, database)
    return restore


def database_names(pg: LocalPostgres) -> set[str]:
    return set(pg.psql("SELECT datname FROM pg_database").split())


def role_names(pg: LocalPostgres) -> set[str]:
    return set(pg.psql("SELECT rolname FROM pg_roles").splitlines())


def latest_set(backup_dir: Path, database: str) -> Path:
    sets = sorted(p for p in (backup_dir / database).iterdir() if (p / "manifest.json").exists())
    assert sets, "no complete set"
    return sets[-1]


def complete_sets(backup_dir: Path, database: str) -> list[str]:
    folder = backup_dir / database
    if not folder.exists():
        return []
    return sorted(
        p.name
        for p in folder.iterdir()
        if p.is_dir() and not p.name.endswith(".partial") and (p / "manifest.json").exists()
    )


def make_database(pg: LocalPostgres, name: str, rows: int = 100) -> None:
    """A small database: one table with rows, for the fault tests."""
    pg.psql(f'CREATE DATABASE "{name}"')
    pg.psql(
        "CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL);"
        f"INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, {rows}) g;",
        name,
    )


def backed_up_database(
    pg: LocalPostgres, base_env: Mapping[str, str], name: str, backup_dir: Path, rows: int = 100
) -> tuple[dict[str, str], str]:
    """make_database, one backup of it (its env and set id), then one more row in the live
    database: from there on the live database differs from the backup."""
    make_database(pg, name, rows)
    env = script_env(pg, base_env, name, backup_dir)
    backup = run_script("backup.sh", env)
    assert backup.returncode == 0, backup.stderr
    pg.psql("INSERT INTO items VALUES (-1, 'written after the backup')", name)
    return env, str(summary(backup)["id"])


def rich_database(pg: LocalPostgres, name: str, suffix: str) -> dict[str, str]:
    """A database with what a restore tends to lose: roles, grants, owners, sequences, a
    partitioned table, a materialized view, an enum, non-ASCII names and comments, and
    database-level state. Returns the role names it created."""
    owner, reader, member = f"own_{suffix}", f"rd_{suffix}", f"Mïtglied_{suffix}"
    pg.psql(
        f"CREATE ROLE {owner} LOGIN PASSWORD 'owner-secret' CREATEDB;"
        f"CREATE ROLE {reader} NOLOGIN;"
        f'CREATE ROLE "{member}" LOGIN CONNECTION LIMIT 5;'
        f'GRANT {reader} TO "{member}";'
        f"COMMENT ON ROLE {reader} IS 'read-only users';"
    )
    pg.psql(f'CREATE DATABASE "{name}" OWNER {owner}')
    pg.psql(
        f'REVOKE CONNECT, TEMPORARY ON DATABASE "{name}" FROM PUBLIC;'
        f'GRANT CONNECT ON DATABASE "{name}" TO {reader};'
        f'ALTER DATABASE "{name}" SET search_path = app, public;'
        f"ALTER DATABASE \"{name}\" SET work_mem = '8MB';"
        f"ALTER ROLE {reader} IN DATABASE \"{name}\" SET statement_timeout = '5s';"
        f"COMMENT ON DATABASE \"{name}\" IS 'Vokabeln — données'"
    )
    pg.psql(
        f"""
        SET ROLE {owner};
        CREATE SCHEMA app;
        CREATE TYPE app.mood AS ENUM ('glücklich', 'traurig', 'ok');
        CREATE SEQUENCE app.ticket_seq START 1000 INCREMENT 7;
        CREATE TABLE app."Wörter" (
            id bigserial PRIMARY KEY,
            wort text NOT NULL UNIQUE,
            stimmung app.mood NOT NULL DEFAULT 'ok',
            ticket int NOT NULL DEFAULT nextval('app.ticket_seq')
        );
        COMMENT ON TABLE app."Wörter" IS 'Wörterbuch — 単語';
        COMMENT ON COLUMN app."Wörter".wort IS 'das Wort';
        INSERT INTO app."Wörter" (wort, stimmung)
            SELECT 'wort ' || g || ' — ü', (ARRAY['glücklich','traurig','ok'])[1 + g % 3]::app.mood
            FROM generate_series(1, 300) g;
        CREATE TABLE app.events (id int NOT NULL, at date NOT NULL, payload jsonb)
            PARTITION BY RANGE (at);
        CREATE TABLE app.events_2025 PARTITION OF app.events
            FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
        CREATE TABLE app.events_2026 PARTITION OF app.events
            FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
        INSERT INTO app.events
            SELECT g, date '2025-06-01' + g, jsonb_build_object('n', g, 'ß', 'ja')
            FROM generate_series(1, 400) g;
        CREATE MATERIALIZED VIEW app.mood_counts AS
            SELECT stimmung, count(*) AS n FROM app."Wörter" GROUP BY stimmung;
        CREATE VIEW app.recent AS SELECT * FROM app.events WHERE at > date '2026-01-01';
        CREATE FUNCTION app.shout(t text) RETURNS text LANGUAGE sql AS $$ SELECT upper(t) $$;
        GRANT USAGE ON SCHEMA app TO {reader};
        GRANT SELECT ON ALL TABLES IN SCHEMA app TO {reader};
        RESET ROLE;
        """,
        name,
    )
    return {"owner": owner, "reader": reader, "member": member}


def database_state(pg: LocalPostgres, name: str) -> dict[str, str]:
    """Database-level state that pg_dump leaves out, as text, for comparisons."""
    literal = name.replace("'", "''")
    row = pg.psql(
        "SELECT pg_get_userbyid(datdba), pg_encoding_to_char(encoding), datcollate, datctype, "
        "datacl::text, coalesce(shobj_description(oid, 'pg_database'), '') "
        f"FROM pg_database WHERE datname = '{literal}'"
    )
    settings = pg.psql(
        "SELECT coalesce(pg_get_userbyid(nullif(setrole, 0)), '-') || ':' || "
        "array_to_string(setconfig, ',') FROM pg_db_role_setting s JOIN pg_database d "
        f"ON d.oid = s.setdatabase WHERE d.datname = '{literal}' ORDER BY 1"
    )
    # datacl names the owner as grantor: compare it as a sorted set of entries.
    owner, encoding, collate, ctype, acl, comment = row.split("|")
    acl_entries = ",".join(sorted(acl.strip("{}").split(",")))
    return {
        "owner": owner,
        "encoding": encoding,
        "collate": collate,
        "ctype": ctype,
        "acl": acl_entries,
        "comment": comment,
        "settings": settings,
    }


class TableLock:
    """An open transaction holding ACCESS EXCLUSIVE on a table: pg_dump waits on it, which
    holds a backup mid-stream for as long as a test needs."""

    def __init__(self, pg: LocalPostgres, database: str, table: str = "items") -> None:
        self.pg, self.database, self.table = pg, database, table
        self.process: subprocess.Popen[str] | None = None

    def __enter__(self) -> TableLock:
        self.process = subprocess.Popen(
            [str(self.pg.bindir / "psql"), "-X", "-q", "-h", str(self.pg.sockets),
             "-p", str(self.pg.port), "-U", SUPERUSER, "-d", self.database],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        assert self.process.stdin is not None
        self.process.stdin.write(f"BEGIN; LOCK TABLE {self.table} IN ACCESS EXCLUSIVE MODE;\n")
        self.process.stdin.flush()
        wait_for(
            lambda: (
                self.pg.psql(
                    f"SELECT count(*) FROM pg_locks WHERE relation = '{self.table}'::regclass "
                    "AND mode = 'AccessExclusiveLock' AND granted",
                    self.database,
                )
                == "1"
            ),
            "the table lock",
        )
        return self

    def release(self) -> None:
        if self.process and self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            self.process.wait(timeout=30)

    def __exit__(self, *exc: object) -> None:
        self.release()


def wait_until_dump_blocks(pg: LocalPostgres, database: str) -> None:
    """Until pg_dump of DATABASE waits on a lock (it has started and is mid-way)."""
    wait_for(
        lambda: (
            pg.psql(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_dump' "
                f"AND datname = '{database}' AND wait_event_type = 'Lock'"
            )
            != "0"
        ),
        "pg_dump to wait on the lock",
    )


def pids_of(program: str, marker: str) -> list[int]:
    """Processes running PROGRAM whose command line mentions MARKER."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            argv
            and Path(argv[0].decode(errors="replace")).name == program
            and any(marker.encode() in arg for arg in argv)
        ):
            found.append(int(entry.name))
    return found


def tool_shims(tmp_path: Path, pg: LocalPostgres, fake_versions: Mapping[str, str]) -> str:
    """A PATH whose pg_dump/pg_restore report other versions (to test the version refusals)."""
    shims = tmp_path / "shims"
    shims.mkdir()
    for tool, behaviour in fake_versions.items():
        path = shims / tool
        path.write_text(f'#!/bin/bash\n{behaviour}\nexec {pg.bindir / tool} "$@"\n')
        path.chmod(0o755)
    return f"{shims}:{pg.bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}"


def refusing_session(
    tmp_path: Path, pg: LocalPostgres, env: Mapping[str, str], application_name: str, error: str
) -> dict[str, str]:
    """ENV with a psql that fails with ERROR (exit 2) for the session the scripts name
    APPLICATION_NAME (PGAPPNAME), and runs every other psql as is."""
    refuse = (
        f'[[ "${{PGAPPNAME:-}}" != {application_name} ]] ||\n  {{ echo "{error}" >&2; exit 2; }}'
    )
    shimmed = {**env, "PATH": tool_shims(tmp_path, pg, {"psql": refuse})}
    shimmed.pop("PG_BINDIR", None)  # (it would go first on PATH, before the shim)
    return shimmed
