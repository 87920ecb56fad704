"""backup.sh then restore.sh on a database with what restores tend to lose: schema and data come
back identical (pg_dump's own output compared), with the database-level state, and the roles come
back in an empty server."""

# SQL here is built from names the tests generate themselves (t_<hex>): nothing to inject.
# ruff: noqa: S608

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from pg_script_helpers import (
    complete_sets,
    database_state,
    pg_dump_text,
    rich_database,
    run_script,
    script_env,
    summary,
)

from jobs.local.postgres import LocalPostgres


def test_round_trip_brings_back_schema_data_and_database_state(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    roles = rich_database(pg, dbname, dbname[2:])
    before = pg_dump_text(pg, dbname)
    state_before = database_state(pg, dbname)
    env = script_env(pg, base_env, dbname, backup_dir)

    backup = run_script("backup.sh", env)
    assert backup.returncode == 0, backup.stderr
    info = summary(backup)
    assert info["status"] == "verified" and info["database"] == dbname
    set_dir = Path(info["path"])
    manifest = json.loads((set_dir / "manifest.json").read_text())
    assert manifest["row_counts"] == "exact"
    assert {"schema": "app", "name": "Wörter", "rows": 300} in manifest["tables"]
    assert {"schema": "app", "name": "events_2025", "rows": 213} in manifest["tables"]
    assert (set_dir / "globals.sql").stat().st_mode & 0o777 == 0o600

    # The live database moves on after the backup; the restore must bring back the backup's state.
    pg.psql("DELETE FROM app.events WHERE id < 100; DROP MATERIALIZED VIEW app.mood_counts", dbname)
    pg.psql(f'ALTER DATABASE "{dbname}" RESET work_mem')
    # A copy an earlier restore kept takes room on the same server: the restore names it.
    earlier = f"{dbname}__pre_restore_20250101T020000Z"
    pg.psql(f'CREATE DATABASE "{earlier}"')

    restore = run_script("restore.sh", env)
    assert restore.returncode == 0, restore.stderr
    assert f"WARNING: earlier restores kept {earlier} (" in restore.stderr
    assert "drop those you no longer need" in restore.stderr
    result = summary(restore)
    assert (
        result["status"] == "restored" and result["kept"] == f"{dbname}__pre_restore_{info['id']}"
    )

    assert pg_dump_text(pg, dbname) == before
    assert database_state(pg, dbname) == state_before
    # The database it replaced is kept, with the changes made after the backup.
    kept = result["kept"]
    assert pg.psql("SELECT count(*) FROM app.events", kept) == "301"
    assert roles["reader"] in pg.psql("SELECT string_agg(rolname, ' ') FROM pg_roles")


def test_roles_and_database_come_back_in_an_empty_server(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    roles = rich_database(pg, dbname, dbname[2:])
    before = pg_dump_text(pg, dbname)
    state_before = database_state(pg, dbname)
    backup = run_script("backup.sh", script_env(pg, base_env, dbname, backup_dir))
    assert backup.returncode == 0, backup.stderr

    with LocalPostgres() as empty:
        env = script_env(empty, base_env, dbname, backup_dir)
        restore = run_script("restore.sh", env)
        assert restore.returncode == 0, restore.stderr
        assert summary(restore)["kept"] is None  # nothing to keep on an empty server

        assert pg_dump_text(empty, dbname) == before
        assert database_state(empty, dbname) == state_before
        member = roles["member"]
        assert (
            empty.psql(
                f"SELECT rolcanlogin, rolconnlimit, pg_has_role('{member}', '{roles['reader']}', "
                f"'member') FROM pg_roles WHERE rolname = '{member}'"
            )
            == "t|5|t"
        )
        assert (
            empty.psql(
                f"SELECT shobj_description(oid, 'pg_authid') FROM pg_roles "
                f"WHERE rolname = '{roles['reader']}'"
            )
            == "read-only users"
        )
        # The owner's password came back with the globals: it can log in over TCP.
        login = subprocess.run(
            [str(empty.bindir / "psql"), "-X", "-At", "-h", "127.0.0.1", "-p", str(empty.port),
             "-U", roles["owner"], "-d", dbname, "-c", "SELECT current_user"],
            env={**os.environ, "PGPASSWORD": "owner-secret", "PGSSLMODE": "disable"},
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert login.stdout.strip() == roles["owner"], login.stderr


def test_restore_again_keeps_existing_roles_as_they_are(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    roles = rich_database(pg, dbname, dbname[2:])
    env = script_env(pg, base_env, dbname, backup_dir)
    assert run_script("backup.sh", env).returncode == 0
    # A password rotated after the backup must survive the restore (globals never alter a role).
    pg.psql(f"ALTER ROLE {roles['owner']} PASSWORD 'rotated' NOCREATEDB")
    hash_before = pg.psql(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{roles['owner']}'")
    restore = run_script("restore.sh", env)
    assert restore.returncode == 0, restore.stderr
    assert (
        pg.psql(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{roles['owner']}'")
        == hash_before
    )
    assert pg.psql(f"SELECT rolcreatedb FROM pg_roles WHERE rolname = '{roles['owner']}'") == "f"
    assert complete_sets(backup_dir, dbname)
