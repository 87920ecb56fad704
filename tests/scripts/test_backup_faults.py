"""backup.sh when things go wrong: a killed pg_dump or pod, a full volume, a second run, ten
failed runs before retention, a pg_dump older than the server. Nothing may look complete that is
not, and no verified set may be lost."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from pg_script_helpers import (
    TableLock,
    complete_sets,
    error_line,
    kill_step,
    make_database,
    pids_of,
    run_script,
    script_env,
    start_script,
    summary,
    tool_shims,
    wait_until_dump_blocks,
)

from jobs.local.postgres import LocalPostgres, free_port


def test_killed_pg_dump_leaves_nothing_that_looks_complete(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    make_database(pg, dbname)
    env = script_env(pg, base_env, dbname, backup_dir)
    assert run_script("backup.sh", env).returncode == 0
    before = complete_sets(backup_dir, dbname)

    with TableLock(pg, dbname):
        step = start_script("backup.sh", env)
        wait_until_dump_blocks(pg, dbname)
        for pid in pids_of("pg_dump", str(backup_dir)):
            subprocess.run(["kill", "-KILL", str(pid)], check=False)
        out, err = step.communicate(timeout=120)

    assert step.returncode == 70, err
    assert "ERROR: pg_dump" in err
    assert json.loads(out.strip().splitlines()[-1])["status"] == "failed"
    assert complete_sets(backup_dir, dbname) == before
    assert not list((backup_dir / dbname).glob("*.partial"))


def test_killed_step_leaves_only_an_incomplete_set(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    make_database(pg, dbname)
    env = script_env(pg, base_env, dbname, backup_dir)
    assert run_script("backup.sh", env).returncode == 0
    before = complete_sets(backup_dir, dbname)

    with TableLock(pg, dbname):
        step = start_script("backup.sh", env)
        wait_until_dump_blocks(pg, dbname)
        kill_step(step)  # the pod dies: no trap runs

    assert complete_sets(backup_dir, dbname) == before
    partial = list((backup_dir / dbname).glob("*.partial"))
    assert len(partial) == 1 and not (partial[0] / "manifest.json").exists()
    listing = [json.loads(line) for line in run_script("inventory.sh", env).stdout.splitlines()]
    assert {(s["id"], s["complete"]) for s in listing if s.get("kind") == "set"} == {
        (before[0], True),
        (partial[0].name.removesuffix(".partial"), False),
    }
    verify = run_script("verify.sh", {**env, "BACKUP_ID": "latest"})
    assert summary(verify)["id"] == before[0]


def test_full_volume_fails_clearly_and_keeps_earlier_sets(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, tmp_path: Path
) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(volume)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mount.stderr.strip()}")
    try:
        make_database(pg, dbname, rows=10)
        env = script_env(pg, base_env, dbname, volume, COMPRESSION="none")
        assert run_script("backup.sh", env).returncode == 0
        before = complete_sets(volume, dbname)
        # The database grows past what is left on the volume.
        pg.psql("INSERT INTO items SELECT g, md5(g::text) || md5((g * 7)::text) "
                "FROM generate_series(11, 60000) g", dbname)  # fmt: skip

        result = run_script("backup.sh", env)

        assert result.returncode == 73, result.stderr
        assert "full" in error_line(result) or "No space" in error_line(result)
        assert complete_sets(volume, dbname) == before
        assert not list((volume / dbname).glob("*.partial"))
        assert run_script("verify.sh", {**env, "BACKUP_ID": before[0]}).returncode == 0
    finally:
        subprocess.run(["umount", "-l", str(volume)], check=False)


def test_second_run_is_refused_while_one_holds_the_lock(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    make_database(pg, dbname)
    env = script_env(pg, base_env, dbname, backup_dir)
    with TableLock(pg, dbname) as lock:
        first = start_script("backup.sh", env)
        wait_until_dump_blocks(pg, dbname)
        second = run_script("backup.sh", env)
        restore = run_script("restore.sh", env)
        lock.release()
        out, err = first.communicate(timeout=120)

    assert second.returncode == 75
    assert "Multi-Attach" in error_line(second)
    assert restore.returncode == 75
    assert first.returncode == 0, err
    assert len(complete_sets(backup_dir, dbname)) == 1


def _age_set(backup_dir: Path, database: str, set_id: str, new_id: str) -> None:
    folder = backup_dir / database
    (folder / set_id).rename(folder / new_id)
    manifest = folder / new_id / "manifest.json"
    manifest.write_text(manifest.read_text().replace(f'"id": "{set_id}"', f'"id": "{new_id}"'))


def test_ten_failed_runs_never_cost_the_last_verified_set(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    make_database(pg, dbname)
    env = script_env(pg, base_env, dbname, backup_dir, RETENTION_DAYS="30", KEEP_MIN="2")
    first = summary(run_script("backup.sh", env))["id"]
    _age_set(backup_dir, dbname, first, "20200101t020000z")  # far past RETENTION_DAYS

    unreachable = {**env, "PGPORT": str(free_port())}
    for _ in range(5):
        assert run_script("backup.sh", unreachable).returncode == 69
    with TableLock(pg, dbname):
        for _ in range(5):  # pg_dump gives up waiting for its lock
            failed = run_script("backup.sh", {**env, "LOCK_WAIT_TIMEOUT": "200ms"})
            assert failed.returncode == 70, failed.stderr
    # Runs killed on earlier days left incomplete sets behind: one without a manifest, one
    # still .partial, one whose manifest says failed.
    folder = backup_dir / dbname
    for name in ("20250101t020000z", "20250102t020000z.partial", "20250103t020000z"):
        (folder / name / "dump").mkdir(parents=True)
    (folder / "20250103t020000z" / "manifest.json").write_text('{\n  "status": "failed"\n}\n')
    recent_partial = folder / f"{'2099'}0101t000000z.partial"
    recent_partial.mkdir()
    for name in ("20250101t020000z", "20250102t020000z.partial", "20250103t020000z"):
        subprocess.run(["touch", "-d", "3 days ago", str(folder / name)], check=True)

    assert complete_sets(backup_dir, dbname) == ["20200101t020000z", "20250103t020000z"]
    latest = run_script("verify.sh", {**env, "BACKUP_ID": "latest"})
    assert summary(latest)["id"] == "20200101t020000z"

    ok = run_script("backup.sh", env)
    assert ok.returncode == 0, ok.stderr
    remaining = sorted(p.name for p in folder.iterdir() if p.is_dir())
    # Both verified sets kept (KEEP_MIN=2); old incomplete ones gone; the recent .partial stays.
    assert remaining == sorted(["20200101t020000z", summary(ok)["id"], recent_partial.name])

    # The backup a restore takes first deletes nothing, even what retention would.
    kept = run_script("backup.sh", {**env, "KEEP_MIN": "1", "SKIP_RETENTION": "1"})
    assert kept.returncode == 0, kept.stderr
    assert "20200101t020000z" in complete_sets(backup_dir, dbname)

    # With KEEP_MIN=1 the expired set goes, and only then.
    ok = run_script("backup.sh", {**env, "KEEP_MIN": "1"})
    assert ok.returncode == 0, ok.stderr
    assert "20200101t020000z" not in complete_sets(backup_dir, dbname)
    assert len(complete_sets(backup_dir, dbname)) == 3


def test_a_set_that_never_reached_the_bucket_outlives_its_retention(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    """The bucket was unreachable for longer than RETENTION_DAYS: the sets it never received are
    their only copy, and stay until an upload has marked them offsite."""
    make_database(pg, dbname)
    env = script_env(
        pg, base_env, dbname, backup_dir, RETENTION_DAYS="7", KEEP_MIN="1", RETAIN_UNTIL_OFFSITE="1"
    )
    first = summary(run_script("backup.sh", env))["id"]
    _age_set(backup_dir, dbname, first, "20200101t020000z")

    kept = run_script("backup.sh", env)
    assert kept.returncode == 0, kept.stderr
    assert "20200101t020000z" in complete_sets(backup_dir, dbname)
    assert "no upload has marked it offsite" in kept.stderr

    (backup_dir / dbname / "20200101t020000z" / ".offsite").write_text("{}\n")
    pruned = run_script("backup.sh", env)
    assert pruned.returncode == 0, pruned.stderr
    assert "20200101t020000z" not in complete_sets(backup_dir, dbname)


def test_pg_dump_older_than_the_server_is_refused(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path, tmp_path: Path
) -> None:
    make_database(pg, dbname)
    path = tool_shims(tmp_path, pg, {
        "pg_dump": '[[ "$1" == --version ]] && { echo "pg_dump (PostgreSQL) 14.9"; exit 0; }'
    })  # fmt: skip
    env = script_env(pg, base_env, dbname, backup_dir, PATH=path)
    env.pop("PG_BINDIR")
    result = run_script("backup.sh", env)
    assert result.returncode == 78
    assert "pg_dump 14.9 is older than the server" in error_line(result)
    assert complete_sets(backup_dir, dbname) == []


def test_unknown_compression_is_a_config_error(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    make_database(pg, dbname)
    env = script_env(pg, base_env, dbname, backup_dir, COMPRESSION="brotli")
    result = run_script("backup.sh", env)
    assert result.returncode == 78 and "COMPRESSION" in error_line(result)
    env = script_env(pg, base_env, dbname, backup_dir, COMPRESSION="lz4")  # pg_dump 15: gzip only
    result = run_script("backup.sh", env)
    assert result.returncode == 78 and "cannot compress with lz4" in error_line(result)
    assert complete_sets(backup_dir, dbname) == []
