"""backup.sh on what a real server may hold: a timeout the DBA set for the app's sessions, and a
database with no tables yet (a fresh install)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pg_script_helpers import (
    complete_sets,
    make_database,
    run_script,
    script_env,
    summary,
    tool_shims,
)

from jobs.local.postgres import LocalPostgres


@pytest.mark.parametrize("compression", ["auto", "gzip"])
def test_an_idle_in_transaction_timeout_does_not_end_the_snapshot_session(
    tmp_path: Path,
    pg: LocalPostgres,
    base_env: dict[str, str],
    dbname: str,
    backup_dir: Path,
    compression: str,
) -> None:
    """The session that exports the dump's snapshot waits, idle in its transaction, until
    pg_dump is done: a 1 s timeout meant for the app must not end it (auto: the rows are counted
    from the dump's files afterwards; gzip: the session counts them meanwhile)."""
    make_database(pg, dbname, 100)
    pg.psql(f"ALTER DATABASE \"{dbname}\" SET idle_in_transaction_session_timeout = '1s'")
    pg.psql(f"ALTER DATABASE \"{dbname}\" SET statement_timeout = '1s'")
    real_dump = f"{pg.bindir}/pg_dump"
    slow_dump = (
        f'if [[ "$*" == *--snapshot* ]]; then {real_dump} "$@"; rc=$?; sleep 3; exit $rc; fi'
    )
    env = script_env(pg, base_env, dbname, backup_dir, COMPRESSION=compression)
    env = {**env, "PATH": tool_shims(tmp_path, pg, {"pg_dump": slow_dump})}
    env.pop("PG_BINDIR")  # (it would go first on PATH, before the shim)

    result = run_script("backup.sh", env)
    assert result.returncode == 0, result.stderr
    assert summary(result)["status"] == "verified"
    assert len(complete_sets(backup_dir, dbname)) == 1


def test_a_database_without_tables_is_backed_up_and_restored(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    pg.psql(f'CREATE DATABASE "{dbname}"')
    pg.psql("CREATE SCHEMA app; CREATE SEQUENCE app.ids", dbname)
    env = script_env(pg, base_env, dbname, backup_dir)

    backup = run_script("backup.sh", env)
    assert backup.returncode == 0, backup.stderr
    assert summary(backup)["status"] == "verified"
    assert run_script("verify.sh", env).returncode == 0

    restore = run_script("restore.sh", env)
    assert restore.returncode == 0, restore.stderr
    assert summary(restore)["tables"] == 0
    assert pg.psql("SELECT count(*) FROM pg_class WHERE relname = 'ids'", dbname) == "1"
