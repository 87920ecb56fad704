"""upload.sh against moto's S3 server through the real aws CLI: what lands offsite, and when."""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

from s3_helpers import (
    OFFSITE_MARK,
    PREFIX,
    assert_no_credentials,
    aws_interrupter,
    error_lines,
    make_set,
    offsite_env,
    offsite_objects,
    run_script,
    set_files,
    summary,
    version_counts,
)

from jobs.local.postgres import free_port
from jobs.local.s3 import LocalS3

OLDER, NEWER = "20260119t020000z", "20260120t020000z"


def test_uploads_every_verified_set_with_its_files_and_sse(
    s3: LocalS3, bucket: str, tmp_path: Path
) -> None:
    older = make_set(tmp_path, "app", OLDER)
    newer = make_set(tmp_path, "app", NEWER)
    make_set(tmp_path, "app", "20260121t020000z", status="failed")
    (tmp_path / "app" / "20260122t020000z.partial" / "dump").mkdir(parents=True)
    env = offsite_env(s3, bucket, tmp_path, S3_SSE="aws:kms", S3_KMS_KEY_ID="alias/pgbackup")
    env["HOME"] = "/nonexistent"  # a read-only root: the CLI's cache goes to a temp dir instead

    proc = run_script("upload.sh", env)

    assert proc.returncode == 0, proc.stderr
    assert_no_credentials(proc)
    result = summary(proc)
    assert result["event"] == "upload" and result["status"] == "ok"
    assert result["sets_uploaded"] == 2 and result["sets_skipped"] == 0
    assert result["uploaded"] == [f"app/{NEWER}", f"app/{OLDER}"]  # the newest goes first
    expected = {
        f"{PREFIX}/app/{set_dir.name}/{rel}": len(data)
        for set_dir in (older, newer)
        for rel, data in set_files(set_dir).items()
    }
    assert offsite_objects(s3, bucket) == expected  # neither the failed nor the partial set
    assert result["bytes"] == sum(expected.values())
    # Each set is marked offsite on the volume (retention may then delete it); the failed is not.
    for set_dir in (older, newer):
        mark = json.loads((set_dir / OFFSITE_MARK).read_text())
        assert mark["url"] == f"s3://{bucket}/{PREFIX}/app/{set_dir.name}/"
    assert not (tmp_path / "app" / "20260121t020000z" / OFFSITE_MARK).exists()
    client = s3.client()
    for key in expected:
        head = client.head_object(Bucket=bucket, Key=key)
        assert head["ServerSideEncryption"] == "aws:kms"
        assert head["SSEKMSKeyId"] == "alias/pgbackup"


def test_one_database_when_named_and_a_second_run_skips_sets_already_offsite(
    s3: LocalS3, bucket: str, tmp_path: Path
) -> None:
    make_set(tmp_path, "app", OLDER)
    make_set(tmp_path, "billing", OLDER)
    env = offsite_env(s3, bucket, tmp_path, S3_SSE="AES256")

    first = run_script("upload.sh", {**env, "PGDATABASE": "billing"})

    assert first.returncode == 0, first.stderr
    assert summary(first)["uploaded"] == [f"billing/{OLDER}"]
    keys = offsite_objects(s3, bucket)
    assert {key.removeprefix(f"{PREFIX}/").split("/")[0] for key in keys} == {"billing"}

    second = run_script("upload.sh", env)

    assert second.returncode == 0, second.stderr
    result = summary(second)
    assert (result["sets_uploaded"], result["sets_skipped"]) == (1, 1)
    assert result["uploaded"] == [f"app/{OLDER}"]
    assert set(version_counts(s3, bucket).values()) == {1}  # nothing of billing sent again
    # A set found offsite without its mark (uploaded by an earlier version) gets it.
    (tmp_path / "billing" / OLDER / OFFSITE_MARK).unlink()
    assert run_script("upload.sh", env).returncode == 0
    assert (tmp_path / "billing" / OLDER / OFFSITE_MARK).exists()
    head = s3.client().head_object(Bucket=bucket, Key=f"{PREFIX}/app/{OLDER}/manifest.json")
    assert head["ServerSideEncryption"] == "AES256"


def test_upload_killed_midway_leaves_no_manifest_and_a_rerun_resumes(
    s3: LocalS3, bucket: str, tmp_path: Path
) -> None:
    set_dir = make_set(tmp_path / "volume", "app", OLDER)
    # TMPDIR: a killed script cannot remove its private temp dir; keep it in the test's folder.
    env = offsite_env(s3, bucket, tmp_path / "volume", TMPDIR=str(tmp_path))
    killer = aws_interrupter(tmp_path / "bin", "kill-after-2")

    killed = run_script("upload.sh", {**env, "PATH": f"{killer}:{env['PATH']}"})

    assert killed.returncode != 0
    offsite = offsite_objects(s3, bucket)
    assert len(offsite) == 2
    assert not any(key.endswith("manifest.json") for key in offsite)

    resumed = run_script("upload.sh", env)

    assert resumed.returncode == 0, resumed.stderr
    files = set_files(set_dir)
    assert summary(resumed)["files_uploaded"] == len(files) - 2  # the two sent before the kill
    assert offsite_objects(s3, bucket) == {
        f"{PREFIX}/app/{OLDER}/{rel}": len(data) for rel, data in files.items()
    }
    assert set(version_counts(s3, bucket).values()) == {1}


def test_a_file_gone_from_the_set_fails_the_upload_before_the_manifest(
    s3: LocalS3, bucket: str, tmp_path: Path
) -> None:
    set_dir = make_set(tmp_path, "app", OLDER)
    (set_dir / "dump" / "3003.dat.gz").symlink_to(tmp_path / "deleted-meanwhile")

    proc = run_script("upload.sh", offsite_env(s3, bucket, tmp_path))

    assert proc.returncode == 70
    [error] = error_lines(proc)
    assert "vanished or cannot be read" in error
    offsite = offsite_objects(s3, bucket)
    assert offsite and not any(key.endswith("manifest.json") for key in offsite)


def test_sizes_are_checked_after_the_upload_before_the_manifest(
    s3: LocalS3, bucket: str, tmp_path: Path
) -> None:
    make_set(tmp_path / "volume", "app", OLDER)
    env = offsite_env(s3, bucket, tmp_path / "volume")
    silent = aws_interrupter(tmp_path / "bin", "sync-does-nothing")

    proc = run_script("upload.sh", {**env, "PATH": f"{silent}:{env['PATH']}"})

    assert proc.returncode == 70
    [error] = error_lines(proc)
    assert "missing or not" in error and "re-run the upload" in error
    assert summary(proc)["status"] == "failed"
    assert offsite_objects(s3, bucket) == {}


def test_an_object_of_another_size_offsite_is_sent_again(
    s3: LocalS3, bucket: str, tmp_path: Path
) -> None:
    set_dir = make_set(tmp_path, "app", OLDER)
    key = f"{PREFIX}/app/{OLDER}/dump/3002.dat.gz"
    s3.client().put_object(Bucket=bucket, Key=key, Body=b"torn")

    proc = run_script("upload.sh", offsite_env(s3, bucket, tmp_path))

    assert proc.returncode == 0, proc.stderr
    body = s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    assert body == (set_dir / "dump" / "3002.dat.gz").read_bytes()


def test_object_lock_bucket_takes_the_upload(s3: LocalS3, tmp_path: Path) -> None:
    bucket = "locked-" + tmp_path.name[-12:].lower().replace("_", "-")
    s3.create_bucket(bucket, object_lock=True)
    s3.client().put_object_lock_configuration(
        Bucket=bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
        },
    )
    # Bigger than the CLI's multipart threshold (8 MiB): parts under Object Lock too.
    big = {"dump/toc.dat": b"toc", "dump/3001.dat.gz": b"\x01" * (9 * 1024 * 1024)}
    make_set(tmp_path, "app", OLDER, files=big)

    proc = run_script("upload.sh", offsite_env(s3, bucket, tmp_path, S3_SSE="aws:kms"))

    assert proc.returncode == 0, proc.stderr
    key = f"{PREFIX}/app/{OLDER}/dump/3001.dat.gz"
    assert offsite_objects(s3, bucket)[key] == 9 * 1024 * 1024
    small = f"{PREFIX}/app/{OLDER}/dump/toc.dat"  # moto applies the default retention to PUTs
    assert s3.client().head_object(Bucket=bucket, Key=small)["ObjectLockMode"] == "COMPLIANCE"


def test_unreachable_store_fails_clearly(s3: LocalS3, bucket: str, tmp_path: Path) -> None:
    make_set(tmp_path, "app", OLDER)
    dead_endpoint = f"http://127.0.0.1:{free_port()}"
    # One attempt: the CLI's retries on a refused connection only make the test slower.
    env = offsite_env(s3, bucket, tmp_path, S3_ENDPOINT_URL=dead_endpoint, AWS_MAX_ATTEMPTS="1")

    proc = run_script("upload.sh", env)

    assert proc.returncode == 69
    [error] = error_lines(proc)
    assert "cannot reach" in error and "S3_ENDPOINT_URL" in error


def test_a_missing_bucket_is_named_without_credentials_in_sight(
    s3: LocalS3, bucket: str, tmp_path: Path
) -> None:
    make_set(tmp_path, "app", OLDER)

    proc = run_script("upload.sh", offsite_env(s3, "no-such-bucket", tmp_path))

    assert proc.returncode == 66
    [error] = error_lines(proc)
    assert "no-such-bucket" in error and "S3_BUCKET" in error
    assert_no_credentials(proc)


def test_configuration_mistakes_are_refused(s3: LocalS3, bucket: str, tmp_path: Path) -> None:
    make_set(tmp_path, "app", OLDER)
    env = offsite_env(s3, bucket, tmp_path)

    no_bucket = run_script("upload.sh", {**env, "S3_BUCKET": ""})
    bad_sse = run_script("upload.sh", {**env, "S3_SSE": "aws:kms:dsse-typo"})
    key_without_kms = run_script("upload.sh", {**env, "S3_SSE": "AES256", "S3_KMS_KEY_ID": "k"})

    for proc in (no_bucket, bad_sse, key_without_kms):
        assert proc.returncode == 78
        assert len(error_lines(proc)) == 1
    assert offsite_objects(s3, bucket) == {}


def test_a_set_that_rotted_on_the_volume_is_not_uploaded(
    s3: LocalS3, bucket: str, tmp_path: Path
) -> None:
    """Verified when it was written, damaged since: it must not go offsite marked verified."""
    rotten = make_set(tmp_path, "app", OLDER)
    make_set(tmp_path, "app", NEWER)
    data = next(p for p in (rotten / "dump").iterdir() if p.name != "toc.dat")
    data.write_bytes(b"bit rot" + data.read_bytes()[7:])
    env = offsite_env(s3, bucket, tmp_path, S3_SSE="AES256")

    proc = run_script("upload.sh", env)

    assert proc.returncode == 65, proc.stderr
    assert f"moved aside to {rotten}.corrupt" in proc.stderr  # the log goes on after the rename
    last = error_lines(proc)[-1]
    assert f"app/{OLDER} failed their checksums" in last and "<id>.corrupt" in last
    uploaded = {
        key.removeprefix(f"{PREFIX}/app/").split("/")[0] for key in offsite_objects(s3, bucket)
    }
    assert uploaded == {NEWER}  # the intact set still went
    # Set aside, so that it is neither retried by every later upload nor kept by retention as a
    # set never offsite: the next run passes.
    assert not rotten.exists()
    aside = tmp_path / "app" / f"{OLDER}.corrupt"
    assert aside.is_dir() and not (aside / OFFSITE_MARK).exists()
    again = run_script("upload.sh", env)
    assert again.returncode == 0, again.stderr
    assert summary(again)["sets_skipped"] == 1


def test_a_rotted_set_of_a_locked_database_stays_in_place_and_is_checked_again(
    s3: LocalS3, bucket: str, tmp_path: Path
) -> None:
    """A backup or restore holds the database: the set is not moved under it."""
    rotten = make_set(tmp_path, "app", OLDER)
    data = next(p for p in (rotten / "dump").iterdir() if p.name != "toc.dat")
    data.write_bytes(b"bit rot" + data.read_bytes()[7:])
    env = offsite_env(s3, bucket, tmp_path, S3_SSE="AES256")
    with (tmp_path / "app" / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        proc = run_script("upload.sh", env)
    assert proc.returncode == 65, proc.stderr
    assert "could not move it aside" in proc.stderr
    assert rotten.is_dir() and not (tmp_path / "app" / f"{OLDER}.corrupt").exists()
