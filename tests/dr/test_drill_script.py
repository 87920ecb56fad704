"""drill.sh on a real PostgreSQL: scratch created, checked, dropped; a corrupt set fails loudly."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from dr_helpers import BackedUp, give_to_server_user, run_script

from jobs.local.postgres import LocalPostgres

CORRUPT = 65


def _result(stdout: str) -> dict[str, object]:
    return json.loads(stdout.strip().splitlines()[-1])


def _databases(pg: LocalPostgres) -> set[str]:
    return set(pg.psql("SELECT datname FROM pg_database").split())


def test_drill_on_a_throwaway_server_restores_checks_and_cleans_up(
    pg: LocalPostgres, backed_up: BackedUp, base_env: dict[str, str], shared_dir: Path
) -> None:
    drill_dir = shared_dir / "drill"
    drill_dir.mkdir()
    give_to_server_user(shared_dir)
    before = _databases(pg)
    env = {
        **base_env,
        "PGDATABASE": backed_up.database,
        "BACKUP_DIR": str(backed_up.backup_dir),
        "DRILL_DIR": str(drill_dir),
        "DRILL_PORT": str(pg.port + 1),
        "TMPDIR": str(shared_dir),
    }
    if os.geteuid() == 0:  # postgres refuses root: run as the server's user, as the pod would
        argv_env = [f"{k}={v}" for k, v in env.items()]
        import subprocess

        done = subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                "env",
                "-i",
                *argv_env,
                "bash",
                str(Path(__file__).resolve().parents[2] / "jobs" / "scripts" / "drill.sh"),
            ],
            capture_output=True,
            text=True,
            check=False,
            start_new_session=True,
        )
    else:
        done = run_script("drill.sh", env)
    assert done.returncode == 0, done.stderr
    result = _result(done.stdout)
    assert result["status"] == "passed"
    assert result["server"] == "throwaway"
    assert result["id"] == backed_up.id
    assert result["tables"] == 4
    assert result["rows"] == 20 + 30 + 300 + 200
    assert result["amcheck"] == "pg_amcheck"
    # Nothing left: no server data, and the live server never saw the scratch database.
    assert not (drill_dir / "data").exists()
    assert _databases(pg) == before


def test_drill_on_an_external_scratch_server_drops_the_scratch_database(
    pg: LocalPostgres, backed_up: BackedUp, base_env: dict[str, str]
) -> None:
    env = {
        **base_env,
        **pg.env(backed_up.database),
        "BACKUP_DIR": str(backed_up.backup_dir),
        "DRILL_SERVER": "external",
    }
    live_rows = pg.psql("SELECT count(*) FROM words", backed_up.database)
    done = run_script("drill.sh", env)
    assert done.returncode == 0, done.stderr
    result = _result(done.stdout)
    scratch = str(result["scratch"])
    assert scratch != backed_up.database
    assert f"created {scratch}" in done.stderr or scratch in done.stderr
    assert scratch not in _databases(pg)
    assert pg.psql("SELECT count(*) FROM words", backed_up.database) == live_rows


def test_a_damaged_dump_fails_the_drill_loudly_before_anything_starts(
    pg: LocalPostgres, backed_up: BackedUp, base_env: dict[str, str]
) -> None:
    data_files = sorted((backed_up.set_dir / "dump").glob("*.dat*"))
    victim = max(data_files, key=lambda p: p.stat().st_size)
    content = bytearray(victim.read_bytes())
    content[len(content) // 2] ^= 0xFF
    victim.write_bytes(bytes(content))
    env = {
        **base_env,
        **pg.env(backed_up.database),
        "BACKUP_DIR": str(backed_up.backup_dir),
        "DRILL_SERVER": "external",
    }
    before = _databases(pg)
    done = run_script("drill.sh", env)
    assert done.returncode == CORRUPT
    assert "CORRUPT" in done.stderr
    assert _result(done.stdout)["status"] == "failed"
    assert _databases(pg) == before


def test_a_set_whose_rows_differ_from_its_manifest_fails_as_corrupt(
    pg: LocalPostgres, backed_up: BackedUp, base_env: dict[str, str]
) -> None:
    manifest_path = backed_up.set_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for table in manifest["tables"]:
        if table["name"] == "words":
            table["rows"] += 5
    manifest_path.write_text(json.dumps(manifest, indent=2))
    env = {
        **base_env,
        **pg.env(backed_up.database),
        "BACKUP_DIR": str(backed_up.backup_dir),
        "DRILL_SERVER": "external",
    }
    before = _databases(pg)
    done = run_script("drill.sh", env)
    assert done.returncode == CORRUPT, done.stderr
    assert "CORRUPT" in done.stderr
    assert _databases(pg) == before


def _drill_env(
    tmp_path: Path, pg: LocalPostgres, backed_up: BackedUp, base_env: dict[str, str], restore: str
) -> dict[str, str]:
    """The drill against the test server, with its call of restore.sh replaced by RESTORE (bash;
    "$@" are restore.sh and its arguments, `$real_bash` the shell): a PATH whose `bash` does it."""
    shims = tmp_path / "shims"
    shims.mkdir()
    real_bash = shutil.which("bash")
    (shims / "bash").write_text(
        f"#!{real_bash}\nreal_bash={real_bash}\n"
        f'if [[ "${{1:-}}" == */restore.sh ]]; then\n{restore}\nfi\n'
        'exec "$real_bash" "$@"\n'
    )
    (shims / "bash").chmod(0o755)
    return {
        **base_env,
        **pg.env(backed_up.database),
        "BACKUP_DIR": str(backed_up.backup_dir),
        "DRILL_SERVER": "external",
        "PATH": f"{shims}:{base_env['PATH']}",
    }


@pytest.mark.parametrize(
    ("restore_exit", "drill_exit", "corrupt"),
    [(65, 65, True), (70, 65, True), (64, 64, False), (66, 66, False), (137, 70, False)],
)
def test_only_a_set_that_fails_to_restore_is_reported_corrupt(
    tmp_path: Path,
    pg: LocalPostgres,
    backed_up: BackedUp,
    base_env: dict[str, str],
    restore_exit: int,
    drill_exit: int,
    corrupt: bool,
) -> None:
    """A refusal or a kill (137: OOM) of the drill's restore says nothing against the set."""
    env = _drill_env(tmp_path, pg, backed_up, base_env, f"exit {restore_exit}")
    done = run_script("drill.sh", env)
    assert done.returncode == drill_exit, done.stderr
    assert ("CORRUPT" in done.stderr) == corrupt


def test_the_drill_counts_the_rows_itself_after_the_restore(
    tmp_path: Path, pg: LocalPostgres, backed_up: BackedUp, base_env: dict[str, str]
) -> None:
    """Its own check, not only restore.sh's: here the restore passes, then a row goes missing."""
    psql = f"{pg.bindir}/psql -h {pg.sockets} -p {pg.port} -U postgres"
    lose_a_row = "DELETE FROM words WHERE ctid IN (SELECT ctid FROM words LIMIT 1)"
    restore_then_lose_a_row = (
        '"$real_bash" "$@" || exit $?\n'
        f'{psql} -d "$TARGET_DATABASE" -c "{lose_a_row}" >/dev/null\nexit 0'
    )
    env = _drill_env(tmp_path, pg, backed_up, base_env, restore_then_lose_a_row)
    done = run_script("drill.sh", env)
    assert done.returncode == CORRUPT, done.stderr
    assert "CORRUPT" in done.stderr and "words" in done.stderr
