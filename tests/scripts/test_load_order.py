"""pg_restore 15 reads an external zstd set through named pipes, which have no size: load_dump.sh
puts a placeholder of each large table's size in their place while pg_restore -j sizes up the
tables, and a lock holds every COPY until the pipes are back. The largest table then loads
first, as it does from plain files, and no placeholder is ever read."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from pg_script_helpers import (
    latest_set,
    pg_dump_text,
    refusing_session,
    restore_copy,
    run_script,
    script_env,
)

from jobs.local.postgres import LocalPostgres

SCRIPTS = Path(__file__).resolve().parents[2] / "jobs" / "scripts"

# load_dump.sh's SIZE_ORDER_MIN_BYTES: tables below it are not ordered.
SIZE_ORDER_MIN_BYTES = 8 * 1024 * 1024


def _database_with_the_largest_table_last(pg: LocalPostgres, name: str) -> None:
    """Small tables first, so that dump-id order (what the pipes alone give) loads them before
    the large one; a sequence and a large object, which load in the same data section."""
    pg.psql(f'CREATE DATABASE "{name}"')
    pg.psql(
        """
        CREATE TABLE small_a (id int PRIMARY KEY, note text);
        CREATE TABLE small_b (id int PRIMARY KEY, note text);
        CREATE TABLE small_c (id int PRIMARY KEY, note text);
        INSERT INTO small_a SELECT g, 'a ' || g FROM generate_series(1, 2000) g;
        INSERT INTO small_b SELECT g, 'b ' || g FROM generate_series(1, 2000) g;
        INSERT INTO small_c SELECT g, E'c\\t' || g FROM generate_series(1, 2000) g;
        CREATE SEQUENCE tickets START 500;
        SELECT nextval('tickets') FROM generate_series(1, 3);
        SELECT lo_from_bytea(0, 'a large object'::bytea);
        CREATE TABLE large_last (id bigint PRIMARY KEY, body text NOT NULL);
        INSERT INTO large_last SELECT g, md5(g::text) || md5((-g)::text)
            FROM generate_series(1, 160000) g;
        CREATE INDEX large_last_body ON large_last (body);
        """,
        name,
    )


def _copies_in_order(log: str) -> list[str]:
    """The tables of the COPY ... FROM stdin statements in the server's log, in the order they
    were sent (a test's server serves one test at a time; pg_dump's COPYs are TO stdout)."""
    pattern = re.compile(r"statement: COPY public\.(\w+) .*FROM stdin")
    return [m.group(1) for m in map(pattern.search, log.splitlines()) if m]


def test_largest_table_loads_first_and_data_is_identical(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    _database_with_the_largest_table_last(pg, dbname)
    env = script_env(pg, base_env, dbname, backup_dir)
    backup = run_script("backup.sh", env)
    assert backup.returncode == 0, backup.stderr
    dump = latest_set(backup_dir, dbname) / "dump"
    assert len(list(dump.glob("*.dat.zst"))) == 5  # four tables and the large object
    assert (dump / "toc.dat").stat().st_size > 0

    log_file = pg.root / "server.log"
    seen = log_file.stat().st_size
    restore = restore_copy(pg, env, dbname, PGOPTIONS="-c log_statement=all")
    assert "(1 large tables ordered by size)" in restore.stderr

    with open(log_file, encoding="utf-8", errors="replace") as handle:
        handle.seek(seen)
        copies = _copies_in_order(handle.read())
    assert sorted(copies) == ["large_last", "small_a", "small_b", "small_c"]
    # DUMP_JOBS=2: the largest table is one of the first two loads (dump-id order puts it last).
    assert "large_last" in copies[:2], copies


def test_one_job_loads_through_pipes_in_dump_order(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    """With DUMP_JOBS=1 pg_restore loads one table after another: there is no order to keep and
    no lock is taken; the pipes are in place from the start."""
    _database_with_the_largest_table_last(pg, dbname)
    env = script_env(pg, base_env, dbname, backup_dir, DUMP_JOBS="1")
    assert run_script("backup.sh", env).returncode == 0
    restore_copy(pg, env, dbname)


def test_tables_load_in_dump_order_when_they_cannot_be_locked(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path, tmp_path: Path
) -> None:
    """The lock session is refused (as for a restore user without privilege on a table): the
    pipes go in place before the data is loaded, which then runs in dump-id order, as correct."""
    _database_with_the_largest_table_last(pg, dbname)
    env = script_env(pg, base_env, dbname, backup_dir)
    assert run_script("backup.sh", env).returncode == 0
    shimmed = refusing_session(
        tmp_path, pg, env, "pgbackup-load-order", "ERROR:  permission denied for table large_last"
    )
    restore = restore_copy(pg, shimmed, dbname)
    assert "could not lock the new tables (ERROR:  permission denied for table large_last)" in (
        restore.stderr
    )


def test_a_server_with_minimal_wal_loads_in_one_run(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    """On a new server restored with wal_level=minimal (disaster recovery, non-durable), one
    pg_restore run creates and loads each table, so that its COPY skips WAL: no size order."""
    _database_with_the_largest_table_last(pg, dbname)
    assert run_script("backup.sh", script_env(pg, base_env, dbname, backup_dir)).returncode == 0
    fresh = LocalPostgres().init(extra_conf="wal_level = minimal\nmax_wal_senders = 0\n").start()
    try:
        restore = run_script("restore.sh", script_env(fresh, base_env, dbname, backup_dir))
        assert restore.returncode == 0, restore.stderr
        assert "(0 large tables ordered by size)" in restore.stderr
        assert pg_dump_text(fresh, dbname) == pg_dump_text(pg, dbname)
    finally:
        fresh.destroy()


def test_a_lock_session_that_ended_fails_a_send_without_ending_the_restore() -> None:
    """Writing to a session that no longer reads would kill the script by SIGPIPE; gate_send
    fails instead (session alive but its input closed, or gone), gate_read finds nothing, and
    the restore goes on to load in dump order."""
    libraries = ("common.sh", "pg.sh", "compress.sh", "load_dump.sh")
    sources = " ".join(f'source "{SCRIPTS}/{name}";' for name in libraries)
    script = (
        "set -euo pipefail; coproc LOAD_GATE { exec 0<&-; sleep 1; }; sleep 0.3;"
        'gate_send "SELECT 1;" && echo sent || echo refused; wait "$LOAD_GATE_PID";'
        'gate_send "SELECT 1;" && echo sent || echo refused;'
        "gate_read answer && echo read || echo nothing; echo alive"
    )
    done = subprocess.run(
        ["bash", "-c", f"{sources} {script}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout.split()) == (0, ["refused", "refused", "nothing", "alive"])
