"""restore.sh refusals and partial runs: a flipped byte, an incomplete set, an unreachable server,
a pg_restore older than the archive, a restore killed half-way. The live database is never
touched by any of them. Also the other ways in: TARGET_DATABASE, prepare then swap, legacy dumps."""

# SQL here is built from names the tests generate themselves (t_<hex>): nothing to inject.
# ruff: noqa: S608

from __future__ import annotations

import fcntl
import gzip
from pathlib import Path

from pg_script_helpers import (
    backed_up_database,
    database_names,
    error_line,
    kill_step,
    latest_set,
    make_database,
    pg_dump_text,
    role_names,
    run_script,
    script_env,
    start_script,
    summary,
    tool_shims,
    wait_for,
)

from jobs.local.postgres import LocalPostgres, free_port


def _assert_untouched(pg: LocalPostgres, dbname: str, dump: str, dbs: set[str]) -> None:
    assert pg_dump_text(pg, dbname) == dump
    assert database_names(pg) == dbs
    assert pg.psql(f"SELECT datallowconn FROM pg_database WHERE datname = '{dbname}'") == "t"


def test_flipped_byte_is_refused_before_anything_is_touched(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    env, _ = backed_up_database(pg, base_env, dbname, backup_dir)
    data = max(
        (latest_set(backup_dir, dbname) / "dump").glob("[0-9]*.dat*"),
        key=lambda p: p.stat().st_size,
    )
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    data.write_bytes(bytes(raw))
    dump, dbs, roles = pg_dump_text(pg, dbname), database_names(pg), role_names(pg)

    for step in ("all", "prepare"):
        result = run_script("restore.sh", {**env, "RESTORE_STEP": step})
        assert result.returncode == 65
        assert "fails its checksums" in error_line(result)
        assert summary(result)["status"] == "failed"
    assert run_script("verify.sh", env).returncode == 65
    _assert_untouched(pg, dbname, dump, dbs)
    assert role_names(pg) == roles


def test_incomplete_sets_are_never_restored(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    env, set_id = backed_up_database(pg, base_env, dbname, backup_dir)
    dump, dbs = pg_dump_text(pg, dbname), database_names(pg)
    (backup_dir / dbname / set_id / "manifest.json").unlink()
    result = run_script("restore.sh", {**env, "BACKUP_ID": set_id})
    assert result.returncode == 65 and "no manifest" in error_line(result)
    result = run_script("restore.sh", env)  # latest: there is no complete set any more
    assert result.returncode == 66
    (backup_dir / dbname / set_id).rename(backup_dir / dbname / f"{set_id}.partial")
    result = run_script("restore.sh", {**env, "BACKUP_ID": set_id})
    assert result.returncode == 65 and "incomplete" in error_line(result)
    _assert_untouched(pg, dbname, dump, dbs)


def test_unreachable_server_is_refused(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    env, _ = backed_up_database(pg, base_env, dbname, backup_dir)
    dump, dbs = pg_dump_text(pg, dbname), database_names(pg)
    result = run_script("restore.sh", {**env, "PGPORT": str(free_port())})
    assert result.returncode == 69
    assert "PGHOST" in error_line(result)
    _assert_untouched(pg, dbname, dump, dbs)


def test_pg_restore_older_than_the_archive_is_refused(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path, tmp_path: Path
) -> None:
    env, _ = backed_up_database(pg, base_env, dbname, backup_dir)
    dump, dbs = pg_dump_text(pg, dbname), database_names(pg)
    path = tool_shims(tmp_path, pg, {"pg_restore": (
        '[[ "$1" == --version ]] && { echo "pg_restore (PostgreSQL) 14.9"; exit 0; }\n'
        'echo "pg_restore: error: unsupported version (1.14) in file header" >&2; exit 1'
    )})  # fmt: skip
    env = {**env, "PATH": path}
    env.pop("PG_BINDIR")
    result = run_script("restore.sh", env)
    assert result.returncode == 78
    assert "older than the archive" in error_line(result)
    _assert_untouched(pg, dbname, dump, dbs)


def test_restore_killed_half_way_leaves_the_live_database_as_it_was(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    env, set_id = backed_up_database(pg, base_env, dbname, backup_dir, rows=300_000)
    dump, dbs = pg_dump_text(pg, dbname), database_names(pg)
    side = f"{dbname}__restore_{set_id}"

    step = start_script("restore.sh", {**env, "DUMP_JOBS": "1"})
    wait_for(
        lambda: pg.psql(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_restore' "
            f"AND datname = '{side}'"
        ) != "0" or step.poll() is not None,
        "pg_restore to load the side database",
    )  # fmt: skip
    assert step.poll() is None, "the restore ended before it could be killed"
    kill_step(step)

    assert pg_dump_text(pg, dbname) == dump
    assert database_names(pg) - dbs <= {side}  # at most the unfinished side database
    assert pg.psql(f"SELECT datallowconn FROM pg_database WHERE datname = '{dbname}'") == "t"
    # The next run clears the leftover and finishes.
    again = run_script("restore.sh", env)
    assert again.returncode == 0, again.stderr
    assert pg.psql("SELECT count(*) FROM items", dbname) == "300000"


def test_target_database_restores_beside_without_swapping(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    env, set_id = backed_up_database(pg, base_env, dbname, backup_dir)
    dump = pg_dump_text(pg, dbname)
    target = f"{dbname}_copy"
    result = run_script("restore.sh", {**env, "TARGET_DATABASE": target})
    assert result.returncode == 0, result.stderr
    info = summary(result)
    assert info["target"] == target and info["kept"] is None and info["status"] == "restored"
    assert pg.psql("SELECT count(*) FROM items", target) == "100"
    assert pg_dump_text(pg, dbname) == dump  # live untouched, still has the later row
    assert f"{dbname}__pre_restore_{set_id}" not in database_names(pg)

    again = run_script("restore.sh", {**env, "TARGET_DATABASE": target})
    assert again.returncode == 64 and "already exists" in error_line(again)


def test_prepare_then_swap(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    env, set_id = backed_up_database(pg, base_env, dbname, backup_dir)
    swap_first = run_script("restore.sh", {**env, "RESTORE_STEP": "swap"})
    assert swap_first.returncode == 66 and "prepare" in error_line(swap_first)

    prepared = run_script("restore.sh", {**env, "RESTORE_STEP": "prepare"})
    assert prepared.returncode == 0, prepared.stderr
    side = summary(prepared)["side"]
    assert summary(prepared)["status"] == "prepared"
    assert pg.psql("SELECT count(*) FROM items", dbname) == "101"  # app still on the live one
    assert pg.psql("SELECT count(*) FROM items", side) == "100"

    swapped = run_script("restore.sh", {**env, "RESTORE_STEP": "swap"})
    assert swapped.returncode == 0, swapped.stderr
    kept = summary(swapped)["kept"]
    assert pg.psql("SELECT count(*) FROM items", dbname) == "100"
    assert pg.psql("SELECT count(*) FROM items", kept) == "101"
    assert side not in database_names(pg)
    assert (
        pg.psql(
            f"SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database "
            f"WHERE datname = '{dbname}'"
        )
        == ""
    )  # the preparation mark does not stay on the live database

    # Restoring the same set again would need the kept name: refused, nothing touched.
    third = run_script("restore.sh", {**env, "BACKUP_ID": set_id})
    assert third.returncode == 64 and kept in error_line(third)


def test_legacy_sql_gz_is_restored_by_name(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    make_database(pg, dbname, rows=50)
    name = f"postgres_{dbname}_20260119_020000.sql.gz"
    (backup_dir / name).write_bytes(gzip.compress(pg_dump_text(pg, dbname).encode()))
    whole = (backup_dir / name).read_bytes()
    (backup_dir / "postgres_broken_20260118_020000.sql.gz").write_bytes(whole[: len(whole) // 2])
    pg.psql("DELETE FROM items WHERE id > 10", dbname)
    env = script_env(pg, base_env, dbname, backup_dir)
    dump, dbs = pg_dump_text(pg, dbname), database_names(pg)

    broken = run_script(
        "restore.sh", {**env, "BACKUP_ID": "postgres_broken_20260118_020000.sql.gz"}
    )
    assert broken.returncode == 65 and "gzip" in error_line(broken)
    _assert_untouched(pg, dbname, dump, dbs)
    assert run_script("restore.sh", env).returncode == 66  # never picked as "latest"

    result = run_script("restore.sh", {**env, "BACKUP_ID": name})
    assert result.returncode == 0, result.stderr
    assert summary(result)["kept"] == f"{dbname}__pre_restore_20260119t020000z"
    assert pg.psql("SELECT count(*) FROM items", dbname) == "50"
    assert pg.psql("SELECT count(*) FROM items", summary(result)["kept"]) == "10"
    listing = run_script("inventory.sh", env).stdout
    assert name in listing and '"kind":"legacy"' in listing


def test_another_stacks_set_under_our_id_is_restored_from_its_own_folder(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path, tmp_path: Path
) -> None:
    # Staging's own set X of the database (100 rows), and production's set of a database with the
    # same name under the same id (both back up at 02:00), fetched for a rehearsal (102 rows).
    env, own_id = backed_up_database(pg, base_env, dbname, backup_dir)
    own_files = {
        p: p.read_bytes() for p in (backup_dir / dbname / own_id).rglob("*") if p.is_file()
    }
    pg.psql("INSERT INTO items VALUES (-2, 'production only')", dbname)
    (tmp_path / "production").mkdir()
    production = run_script("backup.sh", {**env, "BACKUP_DIR": str(tmp_path / "production")})
    assert production.returncode == 0, production.stderr
    copy = backup_dir / ".stacks" / "production" / dbname / own_id
    copy.parent.mkdir(parents=True)
    (tmp_path / "production" / dbname / summary(production)["id"]).rename(copy)
    manifest = copy / "manifest.json"
    manifest.write_text(
        manifest.read_text().replace(f'"id": "{summary(production)["id"]}"', f'"id": "{own_id}"')
    )
    pg.psql("DELETE FROM items WHERE id < 0", dbname)
    rehearsal = {**env, "SOURCE_STACK": "production", "BACKUP_ID": own_id}

    # A backup of the live database holds its folder: the rehearsal waits its turn.
    with (backup_dir / dbname / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        locked = run_script("restore.sh", rehearsal)
    assert locked.returncode == 75 and str(backup_dir / dbname / ".lock") in error_line(locked)
    assert pg.psql("SELECT count(*) FROM items", dbname) == "100"

    restored = run_script("restore.sh", rehearsal)

    assert restored.returncode == 0, restored.stderr
    assert pg.psql("SELECT count(*) FROM items", dbname) == "102"  # production's rows
    assert not copy.exists()  # the rehearsal's copy is gone once it has served
    assert {p: p.read_bytes() for p in own_files} == own_files  # staging's own set untouched
