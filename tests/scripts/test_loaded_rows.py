"""The restore counts each table's rows as pg_restore -j reports its data loaded, while the other
tables still load (loaded_rows.sh); the check against the manifest counts only the rest. The
counts prove as much as before: a table whose rows differ from the manifest still fails the
restore, and a counting session that cannot run leaves every table to the check."""

from __future__ import annotations

import re
from pathlib import Path

from pg_script_helpers import (
    database_names,
    latest_set,
    restore_copy,
    run_script,
    script_env,
    tool_shims,
)

from jobs.errors import ExitCode
from jobs.local.postgres import LocalPostgres


def _three_tables(pg: LocalPostgres, name: str) -> None:
    pg.psql(f'CREATE DATABASE "{name}"')
    pg.psql(
        """
        CREATE SCHEMA "odd schema";
        CREATE TABLE "odd schema"."with space" (id int PRIMARY KEY, note text);
        CREATE TABLE empty_one (id int);
        CREATE TABLE items (id bigint PRIMARY KEY, body text NOT NULL);
        INSERT INTO "odd schema"."with space" SELECT g, 'n' || g FROM generate_series(1, 700) g;
        INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 50000) g;
        """,
        name,
    )


def _backed_up(
    pg: LocalPostgres, base_env: dict[str, str], name: str, backup_dir: Path
) -> dict[str, str]:
    _three_tables(pg, name)
    env = script_env(pg, base_env, name, backup_dir)
    backup = run_script("backup.sh", env)
    assert backup.returncode == 0, backup.stderr
    return env


def test_every_table_is_counted_as_it_loads(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    env = _backed_up(pg, base_env, dbname, backup_dir)
    restore = restore_copy(pg, env, dbname)
    assert "rows of 3 of 3 tables counted as they loaded" in restore.stderr
    assert "3 tables match the manifest (row counts: exact)" in restore.stderr


def test_one_job_leaves_the_counts_to_the_check(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    """pg_restore -j 1 reports no table as finished: no counting session is started."""
    env = _backed_up(pg, base_env, dbname, backup_dir)
    restore = restore_copy(pg, env, dbname, DUMP_JOBS="1")
    assert "counted as they loaded" not in restore.stderr
    assert "3 tables match the manifest (row counts: exact)" in restore.stderr


def test_a_counting_session_that_cannot_connect_leaves_the_counts_to_the_check(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path, tmp_path: Path
) -> None:
    env = _backed_up(pg, base_env, dbname, backup_dir)
    refuse_the_counter = (
        '[[ "${PGAPPNAME:-}" != pgbackup-row-counter ]] ||\n'
        '  { echo "FATAL:  sorry, too many clients already" >&2; exit 2; }'
    )
    path = tool_shims(tmp_path, pg, {"psql": refuse_the_counter})
    shimmed = {**env, "PATH": path}
    shimmed.pop("PG_BINDIR")  # (it would go first on PATH, before the shim)
    restore = restore_copy(pg, shimmed, dbname)
    assert "rows of 0 of 3 tables counted as they loaded" in restore.stderr
    assert "3 tables match the manifest (row counts: exact)" in restore.stderr


def test_a_table_counted_as_it_loaded_still_fails_a_wrong_manifest(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    env = _backed_up(pg, base_env, dbname, backup_dir)
    manifest = latest_set(backup_dir, dbname) / "manifest.json"
    text, changed = re.subn(
        r'("name": "items", "rows": )50000\b', r"\g<1>50005", manifest.read_text()
    )
    assert changed == 1
    manifest.write_text(text)
    before = database_names(pg)
    restore = run_script("restore.sh", {**env, "TARGET_DATABASE": f"{dbname}_copy"})
    assert restore.returncode == ExitCode.CORRUPT, restore.stderr
    assert "rows of 3 of 3 tables counted as they loaded" in restore.stderr
    assert "public.items: manifest 50005 rows, restored 50000" in restore.stderr
    assert database_names(pg) == before
