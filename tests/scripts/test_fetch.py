"""fetch.sh against moto's S3 server through the real aws CLI: the right set arrives whole, or
nothing arrives under its name."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from s3_helpers import (
    PREFIX,
    assert_no_credentials,
    error_lines,
    make_set,
    offsite_env,
    put_set,
    run_script,
    set_files,
    summary,
)

from jobs.local.s3 import LocalS3

OLDEST, OLDER, FAILED, UNFINISHED = (
    "20260117t020000z",
    "20260118t020000z",
    "20260119t020000z",
    "20260120t020000z",
)


def offsite_sets(s3: LocalS3, bucket: str, source: Path) -> dict[str, Path]:
    """Four sets offsite: two verified, a newer failed one, and a newest without manifest."""
    sets = {
        OLDEST: make_set(source, "app", OLDEST),
        OLDER: make_set(source, "app", OLDER),
        FAILED: make_set(source, "app", FAILED, status="failed"),
        UNFINISHED: make_set(source, "app", UNFINISHED),
    }
    for set_id, set_dir in sets.items():
        put_set(s3, bucket, set_dir, manifest=set_id != UNFINISHED)
    return sets


def folder_names(path: Path) -> set[str]:
    """What a user sees in a folder (the lock file aside)."""
    if not path.exists():
        return set()
    return {p.name for p in path.iterdir() if not p.name.startswith(".")}


def test_latest_is_the_newest_verified_set_and_arrives_whole(
    s3: LocalS3, bucket: str, tmp_path: Path
) -> None:
    sets = offsite_sets(s3, bucket, tmp_path / "source")
    volume = tmp_path / "volume"
    env = offsite_env(s3, bucket, volume, DATABASE="app", BACKUP_ID="latest")

    proc = run_script("fetch.sh", env)

    assert proc.returncode == 0, proc.stderr
    assert_no_credentials(proc)
    result = summary(proc)
    assert result["event"] == "fetch" and result["status"] == "verified"
    assert result["id"] == OLDER and result["downloaded"] is True
    assert result["path"] == str(volume / "app" / OLDER)
    assert folder_names(volume / "app") == {OLDER}  # no .partial left beside it
    assert set_files(volume / "app" / OLDER) == set_files(sets[OLDER])
    assert (volume / "app" / OLDER / "globals.sql").stat().st_mode & 0o777 == 0o600

    again = run_script("fetch.sh", env)

    assert again.returncode == 0, again.stderr
    assert summary(again)["downloaded"] is False  # already there and intact


def test_by_id_and_into_any_folder(s3: LocalS3, bucket: str, tmp_path: Path) -> None:
    sets = offsite_sets(s3, bucket, tmp_path / "source")
    volume, folder = tmp_path / "volume", tmp_path / "downloads"
    env = offsite_env(s3, bucket, volume, PGDATABASE="app", BACKUP_ID=OLDEST)

    proc = run_script("fetch.sh", {**env, "FETCH_TO": str(folder)})

    assert proc.returncode == 0, proc.stderr
    assert summary(proc)["path"] == str(folder / OLDEST)
    assert set_files(folder / OLDEST) == set_files(sets[OLDEST])
    assert folder_names(folder) == {OLDEST}
    assert not volume.exists()  # the volume is not touched by a download elsewhere


def test_a_corrupted_object_is_refused_and_nothing_is_left(
    s3: LocalS3, bucket: str, tmp_path: Path
) -> None:
    sets = offsite_sets(s3, bucket, tmp_path / "source")
    data = bytearray((sets[OLDER] / "dump" / "3002.dat.gz").read_bytes())
    data[1000] ^= 0x01  # one flipped bit, same size
    key = f"{PREFIX}/app/{OLDER}/dump/3002.dat.gz"
    s3.client().put_object(Bucket=bucket, Key=key, Body=bytes(data))
    volume, folder = tmp_path / "volume", tmp_path / "downloads"
    env = offsite_env(s3, bucket, volume, DATABASE="app", BACKUP_ID="latest")

    for where in ({}, {"FETCH_TO": str(folder)}):
        proc = run_script("fetch.sh", {**env, **where})

        assert proc.returncode == 65, proc.stderr
        assert_no_credentials(proc)
        [error] = error_lines(proc)
        assert "corrupted" in error and OLDER in error
        assert summary(proc)["status"] == "failed"
    assert folder_names(volume / "app") == set()
    assert folder_names(folder) == set()


def test_checksum_list_that_leaves_a_file_out_is_refused(
    s3: LocalS3, bucket: str, tmp_path: Path
) -> None:
    sets = offsite_sets(s3, bucket, tmp_path / "source")
    # A SHA256SUMS without one file's line would let that file through unchecked.
    sums = (sets[OLDER] / "SHA256SUMS").read_text().splitlines(keepends=True)
    short = "".join(line for line in sums if not line.endswith("dump/3001.dat.gz\n"))
    key = f"{PREFIX}/app/{OLDER}/SHA256SUMS"
    s3.client().put_object(Bucket=bucket, Key=key, Body=short.encode())
    volume = tmp_path / "volume"

    proc = run_script("fetch.sh", offsite_env(s3, bucket, volume, DATABASE="app", BACKUP_ID=OLDER))

    assert proc.returncode == 65
    assert "dump/3001.dat.gz" in proc.stderr  # named as the reason
    assert folder_names(volume / "app") == set()


def test_sets_that_cannot_be_fetched_are_named(s3: LocalS3, bucket: str, tmp_path: Path) -> None:
    offsite_sets(s3, bucket, tmp_path / "source")
    env = offsite_env(s3, bucket, tmp_path / "volume", DATABASE="app")

    cases = {
        UNFINISHED: 65,  # objects offsite, but no manifest: its upload never finished
        "20250101t000000z": 66,  # no such set
        "../../etc": 64,  # not an id
    }
    for set_id, code in cases.items():
        proc = run_script("fetch.sh", {**env, "BACKUP_ID": set_id})
        assert proc.returncode == code, proc.stderr
        assert len(error_lines(proc)) == 1
    escape = run_script("fetch.sh", {**env, "DATABASE": "../../etc"})
    assert escape.returncode == 64 and "folder name" in error_lines(escape)[0]
    other = run_script("fetch.sh", {**env, "DATABASE": "billing", "BACKUP_ID": "latest"})
    assert other.returncode == 66
    assert "no verified backup of billing" in error_lines(other)[0]


def test_a_damaged_copy_already_on_the_volume_is_left_alone(
    s3: LocalS3, bucket: str, tmp_path: Path
) -> None:
    offsite_sets(s3, bucket, tmp_path / "source")
    volume = tmp_path / "volume"
    damaged = make_set(volume, "app", OLDER)
    (damaged / "dump" / "toc.dat").write_bytes(b"damaged")

    proc = run_script("fetch.sh", offsite_env(s3, bucket, volume, DATABASE="app"))

    assert proc.returncode == 65
    assert "move it aside" in error_lines(proc)[0]
    assert (damaged / "dump" / "toc.dat").read_bytes() == b"damaged"


def test_another_stacks_set_is_kept_apart_even_under_our_name_and_id(
    s3: LocalS3, bucket: str, tmp_path: Path
) -> None:
    # Both stacks back up `app` at 02:00: production's set can have the id of one of ours.
    production = offsite_sets(s3, bucket, tmp_path / "source")
    volume = tmp_path / "volume"
    ours = make_set(volume, "app", OLDER)
    our_files = set_files(ours)
    env = offsite_env(s3, bucket, volume, DATABASE="app", SOURCE_STACK="production")

    proc = run_script("fetch.sh", {**env, "BACKUP_ID": OLDER})

    assert proc.returncode == 0, proc.stderr
    copy = volume / ".stacks" / "production" / "app" / OLDER
    assert summary(proc)["path"] == str(copy) and summary(proc)["downloaded"] is True
    assert set_files(copy) == set_files(production[OLDER])  # production's, not ours
    assert set_files(ours) == our_files and folder_names(volume / "app") == {OLDER}

    # What failed rehearsals left over a day ago goes with the next fetch; a copy a rehearsal
    # still running may need stays, and a symbolic link is not followed.
    abandoned = copy.parent / f"{UNFINISHED}.partial"  # as a killed fetch leaves it
    abandoned.mkdir()
    os.utime(abandoned, (time.time() - 2 * 86400,) * 2)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep").write_text("not a set")
    link = copy.parent / FAILED
    link.symlink_to(elsewhere)
    os.utime(link, (time.time() - 2 * 86400,) * 2, follow_symlinks=False)
    again = run_script("fetch.sh", {**env, "BACKUP_ID": OLDEST})

    assert again.returncode == 0, again.stderr
    assert folder_names(copy.parent) == {OLDER, OLDEST, FAILED}
    assert set_files(copy.parent / OLDEST) == set_files(production[OLDEST])
    assert (elsewhere / "keep").exists()
    assert set_files(ours) == our_files


def test_a_stack_name_that_is_not_one_is_refused(s3: LocalS3, bucket: str, tmp_path: Path) -> None:
    offsite_sets(s3, bucket, tmp_path / "source")
    volume = tmp_path / "volume"
    env = offsite_env(s3, bucket, volume, DATABASE="app", SOURCE_STACK="../app")

    proc = run_script("fetch.sh", env)

    assert proc.returncode == 64
    [error] = error_lines(proc)
    assert "SOURCE_STACK '../app' is not a stack name" in error
    assert not volume.exists()


def test_a_second_download_into_the_same_folder_waits_its_turn(
    s3: LocalS3, bucket: str, tmp_path: Path
) -> None:
    offsite_sets(s3, bucket, tmp_path / "source")
    folder = tmp_path / "downloads"
    folder.mkdir()
    env = offsite_env(s3, bucket, tmp_path / "volume", DATABASE="app", FETCH_TO=str(folder))

    lock = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a download already running there
        proc = run_script("fetch.sh", env)
    finally:
        os.close(lock)

    assert proc.returncode == 75
    assert f"another download into {folder} is running" in error_lines(proc)[0]
    assert list(folder.iterdir()) == []  # it did not start over the other one's partial folder

    proc = run_script("fetch.sh", env)

    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in folder.iterdir()] == [OLDER]  # and no lock file is left in it
