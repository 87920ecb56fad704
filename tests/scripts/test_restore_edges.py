"""restore.sh at the edges of its steps: a database someone else creates under the name it is about
to create, a SIGTERM the moment the live database stops taking connections, a swap that fails, a
set missing a data file, the comment put back in the swap's own transaction, the server's
maintenance database as the one restored, and a verify while the folder is locked."""

# SQL here is built from names the tests generate themselves (t_<hex>): nothing to inject.
# ruff: noqa: S608

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
from pathlib import Path

from pg_script_helpers import (
    SCRIPTS,
    backed_up_database,
    database_names,
    error_line,
    latest_set,
    make_database,
    run_script,
    script_env,
    start_script,
    summary,
    tool_shims,
    wait_for,
)

from jobs.backends import steps
from jobs.local.postgres import LocalPostgres


def _with_psql(
    tmp_path: Path, pg: LocalPostgres, env: dict[str, str], behaviour: str
) -> dict[str, str]:
    """ENV whose psql runs BEHAVIOUR (bash) first, then the real psql."""
    shimmed = {**env, "PATH": tool_shims(tmp_path, pg, {"psql": behaviour})}
    shimmed.pop("PG_BINDIR", None)  # (it would go first on PATH, before the shim)
    return shimmed


def _allows_connections(pg: LocalPostgres, database: str) -> str:
    return pg.psql(f"SELECT datallowconn FROM pg_database WHERE datname = '{database}'")


def test_a_database_created_by_someone_else_meanwhile_is_never_dropped(
    tmp_path: Path, pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    env, _ = backed_up_database(pg, base_env, dbname, backup_dir)
    target = f"{dbname}_copy"
    admin = f"{pg.bindir}/psql -h {pg.sockets} -p {pg.port} -U postgres"
    # Just before restore.sh creates the target, another client creates it and writes to it.
    create = f"{admin} -d postgres -c 'CREATE DATABASE \"{target}\"'"
    fill = (
        f'{admin} -d {target} -c "CREATE TABLE precious (x int); INSERT INTO precious VALUES (42)"'
    )
    race = f'if [[ " $* " == *create.sql* ]]; then {create} >/dev/null; {fill} >/dev/null; fi'
    result = run_script(
        "restore.sh", {**_with_psql(tmp_path, pg, env, race), "TARGET_DATABASE": target}
    )
    assert result.returncode == 70, result.stderr
    assert "already exists" in result.stderr
    assert pg.psql("SELECT x FROM precious", target) == "42"


def test_sigterm_as_the_live_database_stops_taking_connections_lets_them_back_in(
    tmp_path: Path, pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    env, _ = backed_up_database(pg, base_env, dbname, backup_dir)
    marker = tmp_path / "refused"
    # The real ALTER commits, then the step is stopped (a deadline, `kubectl delete job`).
    slow = (
        f'if [[ "$*" == *"ALLOW_CONNECTIONS false"* ]]; then {pg.bindir}/psql "$@"; rc=$?;'
        f" touch {marker}; sleep 30; exit $rc; fi"
    )
    step = start_script("restore.sh", _with_psql(tmp_path, pg, env, slow))
    wait_for(marker.exists, "the live database to refuse connections")
    os.kill(step.pid, signal.SIGTERM)
    out, err = step.communicate(timeout=60)
    assert step.returncode == 143, err
    assert _allows_connections(pg, dbname) == "t"
    assert pg.psql("SELECT count(*) FROM items", dbname) == "101"  # still the live data
    assert json.loads(out.splitlines()[-1])["status"] == "failed"


def test_a_failed_swap_leaves_the_live_database_serving_and_says_so_on_stdout(
    tmp_path: Path, pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    env, _ = backed_up_database(pg, base_env, dbname, backup_dir)
    failing = (
        'if [[ " $* " == *swap.sql* ]]; then echo "psql:swap.sql:2: ERROR:  out of shared memory"'
        " >&2; exit 3; fi"
    )
    result = run_script("restore.sh", _with_psql(tmp_path, pg, env, failing))
    assert result.returncode == 70
    assert "out of shared memory" in error_line(result)
    failed = summary(result)  # printed although the failing call's output went to /dev/null
    assert (failed["status"], failed["exit_code"]) == ("failed", 70)
    assert _allows_connections(pg, dbname) == "t"
    assert pg.psql("SELECT count(*) FROM items", dbname) == "101"
    assert not [d for d in database_names(pg) if "__pre_restore_" in d]


def test_the_comment_comes_back_in_the_swaps_transaction(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    make_database(pg, dbname, 100)
    pg.psql(f"COMMENT ON DATABASE \"{dbname}\" IS 'vocabulary of the app'")
    env = script_env(pg, base_env, dbname, backup_dir)
    assert run_script("backup.sh", env).returncode == 0
    pg.psql(f"COMMENT ON DATABASE \"{dbname}\" IS 'changed since'")

    result = run_script("restore.sh", env)
    assert result.returncode == 0, result.stderr
    comment = (
        f"SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '{dbname}'"
    )
    assert pg.psql(comment) == "vocabulary of the app"  # not the side database's prepared mark


def test_a_comment_that_cannot_be_put_back_undoes_the_whole_swap(
    tmp_path: Path, pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    """All or nothing: a failure putting the comment back (here a broken statement) leaves the
    live database in place, never a swapped one reported as a failed restore."""
    env, _ = backed_up_database(pg, base_env, dbname, backup_dir)
    real = f"{pg.bindir}/psql"
    break_the_comment = (
        'args=(); for a in "$@"; do if [[ "$a" == */swap.sql ]]; then\n'
        '  sed "s/COMMENT ON DATABASE /COMMENT ON DATABAS /" "$a" >"$a.broken"; a="$a.broken"; fi\n'
        f'  args+=("$a"); done; exec {real} "${{args[@]}}"'
    )
    result = run_script("restore.sh", _with_psql(tmp_path, pg, env, break_the_comment))
    assert result.returncode == 70, result.stderr
    assert pg.psql("SELECT count(*) FROM items", dbname) == "101"  # still the live data
    assert _allows_connections(pg, dbname) == "t"
    assert not [d for d in database_names(pg) if "__pre_restore_" in d]


def test_a_set_missing_a_data_file_is_refused_by_verify_and_restore(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    env, _ = backed_up_database(pg, base_env, dbname, backup_dir)
    set_dir = latest_set(backup_dir, dbname)
    sums = (set_dir / "SHA256SUMS").read_text().splitlines()
    (victim,) = [line for line in sums if line.endswith(".dat.zst") or line.endswith(".dat.gz")][:1]
    (set_dir / victim.split("  ", 1)[1]).unlink()
    (set_dir / "SHA256SUMS").write_text("".join(f"{line}\n" for line in sums if line != victim))
    dbs = database_names(pg)

    verify = run_script("verify.sh", env)
    assert verify.returncode == 65, verify.stderr
    restore = run_script("restore.sh", {**env, "TARGET_DATABASE": f"{dbname}_copy"})
    assert restore.returncode == 65, restore.stderr
    assert "missing" in error_line(restore) or "differs" in error_line(restore)
    assert database_names(pg) == dbs


def test_verify_waits_for_no_one_deleting_or_writing_sets(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    """A retention run deleting the set being checked would make it look corrupt: verify is
    refused (75) while the folder's lock is held, and passes once it is free."""
    env, _ = backed_up_database(pg, base_env, dbname, backup_dir)
    with (backup_dir / dbname / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        locked = run_script("verify.sh", env)
    assert locked.returncode == 75, locked.stderr
    assert run_script("verify.sh", env).returncode == 0


def test_restoring_the_postgres_database_runs_its_session_from_template1(
    base_env: dict[str, str], backup_dir: Path
) -> None:
    # A server of its own: the swap renames `postgres` away for a moment.
    with LocalPostgres() as own:
        own.psql("CREATE TABLE items (id int); INSERT INTO items VALUES (1)")
        env = script_env(own, base_env, "postgres", backup_dir)
        assert run_script("backup.sh", env).returncode == 0
        own.psql("INSERT INTO items VALUES (2)")

        result = run_script("restore.sh", env)
        assert result.returncode == 0, result.stderr
        assert _allows_connections(own, "postgres") == "t"
        assert own.psql("SELECT count(*) FROM items") == "1"

        refused = run_script("restore.sh", {**env, "MAINTENANCE_DB": "postgres"})
        assert refused.returncode == 64 and "MAINTENANCE_DB" in error_line(refused)


def test_a_database_with_a_long_name_is_restored_side_by_side(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    """`<db>__pre_restore_<id>` would pass PostgreSQL's 63 bytes: the names are fitted, not the
    restore refused (a disaster recovery restores through the side database too)."""
    long_name = f"{dbname}_" + "x" * (60 - len(dbname))
    env, set_id = backed_up_database(pg, base_env, long_name, backup_dir)
    # A copy an earlier restore kept (of an id of another length, so cut elsewhere) is named.
    earlier = steps.kept_name(long_name, "20250101t020000z-2")
    pg.psql(f'CREATE DATABASE "{earlier}"')
    result = run_script("restore.sh", env)
    assert result.returncode == 0, result.stderr
    assert f"earlier restores kept {earlier} (" in result.stderr
    kept = summary(result)["kept"]
    assert kept == steps.kept_name(long_name, set_id)  # the CLI names it the same way
    assert len(kept.encode()) <= 63 and kept.endswith(f"__pre_restore_{set_id}")
    assert pg.psql("SELECT count(*) FROM items", kept) == "101"  # the data it replaced
    assert pg.psql("SELECT count(*) FROM items", long_name) == "100"


def test_the_scripts_and_the_cli_fit_names_alike() -> None:
    suffix = "__pre_restore_20261125t020000z-2"
    for name in ("app", "d" * 50, "é" * 30, "a" * 25 + "é" * 10):
        fitted = subprocess.run(
            ["bash", "-c", f'source "{SCRIPTS}/common.sh"; source "{SCRIPTS}/restore_lib.sh";'
             ' fitted_name "$1" "$2"', "_", name, suffix],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        assert fitted == steps.fitted_name(name, suffix)
        assert len(fitted.encode()) <= 63
