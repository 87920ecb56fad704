"""`download` against moto's S3, and restoring another stack's backup with the local backend
(two throwaway PostgreSQL servers standing in for production and staging)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from clihelp import Local, seed

from jobs.backends.offsite import OffsiteStore
from jobs.errors import ExitCode, PgBackupError
from jobs.local.postgres import LocalPostgres

REPO = Path(__file__).resolve().parents[2]


def backup_id_of(out: str) -> str:
    line = next(line for line in out.splitlines() if line.startswith("Backup id:"))
    return line.split(":", 1)[1].strip()


def offsite_backup(local: Local) -> str:
    local.with_offsite()
    assert local.run("backup") == 0
    return backup_id_of(local.output()[0])


# -- download --------------------------------------------------------------------------------------
def test_download_copies_a_verified_set(local: Local, tmp_path: Path) -> None:
    backup_id = offsite_backup(local)
    to = tmp_path / "downloads"

    assert local.run("download", "latest", "--to", str(to)) == 0

    out, _ = local.output()
    assert "checksums verified" in out
    assert sorted(p.name for p in to.iterdir()) == [backup_id]
    original = local.backup_dir / local.db / backup_id
    for path in original.rglob("*"):
        if path.is_file() and path.name != ".offsite":  # the volume's note, never uploaded
            assert (to / backup_id / path.relative_to(original)).read_bytes() == path.read_bytes()


def test_download_refuses_a_corrupted_object_and_leaves_no_final_folder(
    local: Local, tmp_path: Path
) -> None:
    backup_id = offsite_backup(local)
    client = local.s3.client()
    prefix = f"postgres/{local.db}/{backup_id}/dump/"
    keys = [
        o["Key"] for o in client.list_objects_v2(Bucket=local.bucket, Prefix=prefix)["Contents"]
    ]
    victim = next(k for k in keys if not k.endswith("toc.dat"))
    client.put_object(Bucket=local.bucket, Key=victim, Body=b"bit rot")
    to = tmp_path / "downloads"

    code = local.run("download", backup_id, "--to", str(to))

    _, err = local.output()
    assert code == ExitCode.CORRUPT, err
    assert "corrupt" in err
    assert not (to / backup_id).exists()
    assert not any(p.name.endswith(".partial") for p in to.iterdir()) if to.exists() else True


def test_kubernetes_download_reads_the_bucket_directly_and_checks_every_file(
    local: Local, tmp_path: Path
) -> None:
    """The Kubernetes backend downloads from the operator's machine (no pod, no exec)."""
    backup_id = offsite_backup(local)
    store = OffsiteStore(local.bucket, "postgres", local.s3.endpoint_url)

    result = store.download(local.db, "latest", tmp_path / "good")

    assert result.id == backup_id and result.path == tmp_path / "good" / backup_id
    assert (result.path / "manifest.json").exists() and result.files > 0
    # role password hashes stay private to the operator
    assert (result.path / "globals.sql").stat().st_mode & 0o077 == 0
    client = local.s3.client()
    key = f"postgres/{local.db}/{backup_id}/globals.sql"
    client.put_object(Bucket=local.bucket, Key=key, Body=b"-- tampered")
    with pytest.raises(PgBackupError) as refused:
        store.download(local.db, backup_id, tmp_path / "bad")
    assert refused.value.code == ExitCode.CORRUPT
    assert not (tmp_path / "bad" / backup_id).exists()
    assert not (tmp_path / "bad" / f"{backup_id}.partial").exists()


def test_download_of_an_unknown_id_is_not_found(local: Local, tmp_path: Path) -> None:
    offsite_backup(local)
    code = local.run("download", "20200101t000000z", "--to", str(tmp_path / "d"))
    assert code == ExitCode.NOT_FOUND


# -- another stack's backup ------------------------------------------------------------------------
@pytest.fixture
def production_pg() -> Iterator[LocalPostgres]:
    """A second server: production, next to the session's server playing staging."""
    server = LocalPostgres().init()
    server.start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.mark.parametrize("same_name", [False, True], ids=["own-names", "same-name"])
def test_staging_restores_production_offsite_backup(
    same_name: bool,
    local: Local,
    production_pg: LocalPostgres,
    project: Callable[[str, str], Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Production: its own server, volume and bucket; one verified backup offsite. Its database
    # has a name of its own, or (a cluster per stack) the same name as staging's.
    prod_db = local.db if same_name else f"{local.db}_prod"
    seed(production_pg, prod_db, rows=70)
    prod_bucket = f"{local.bucket}-prod"
    local.s3.create_bucket(prod_bucket)
    prod_env = {
        **production_pg.env(prod_db),
        "BACKUP_DIR": str(tmp_path / "prod-backups"),
        "S3_BUCKET": prod_bucket,
    }
    (tmp_path / "prod-backups").mkdir()
    staging_env = {k: os.environ[k] for k in prod_env if k != "S3_BUCKET"}
    for key, value in prod_env.items():
        monkeypatch.setenv(key, value)
    assert local.run("backup") == 0
    prod_id = backup_id_of(local.output()[0])
    before = local.s3.client().list_object_versions(Bucket=prod_bucket).get("Versions", [])

    # Staging: its own server (the session's), granted read access to production's bucket.
    for key, value in staging_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("S3_BUCKET")  # staging's bucket comes from its stack file
    staging_yaml = (REPO / "Pulumi.staging.yaml").read_text()
    staging_yaml = staging_yaml.replace("name: vocab_app_staging", f"name: {local.db}")
    staging_yaml = staging_yaml.replace("vocab-app-staging-postgres-backups", local.bucket)
    staging_yaml = staging_yaml.replace("vocab-app-production-postgres-backups", prod_bucket)
    project("staging", staging_yaml)
    production_yaml = (REPO / "Pulumi.production.yaml").read_text()
    production_yaml = production_yaml.replace("name: vocab_app_production", f"name: {prod_db}")
    project(
        "production", production_yaml.replace("vocab-app-production-postgres-backups", prod_bucket)
    )

    code = local.run(
        "restore", "--source-stack", "production", "latest", typed=local.db, stack="staging"
    )

    out, err = local.output()
    assert code == 0, err
    assert f"{prod_db}/{prod_id}" in out
    assert local.sql("SELECT count(*) FROM words") == "70"
    kept = f"{local.db}__pre_restore_{prod_id}"
    assert local.sql("SELECT count(*) FROM words", kept) == "50"
    # Production's data and bucket are as they were.
    assert production_pg.psql("SELECT count(*) FROM words", prod_db) == "70"
    after = local.s3.client().list_object_versions(Bucket=prod_bucket).get("Versions", [])
    assert after == before
    # The guide's follow-up, one command: staging back from the fresh backup taken first.
    fresh = next(line for line in out.splitlines() if line.startswith("Fresh backup:"))
    fresh_id = fresh.split(":", 1)[1].split()[0]
    assert local.run("restore", fresh_id, "--yes", "--skip-fresh-backup", stack="staging") == 0
    assert local.sql("SELECT count(*) FROM words") == "50"
    # Production's set was fetched apart on staging's volume, never as one of staging's sets (so
    # never listed, restored as `latest` or uploaded into staging's bucket), and went once the
    # restore had succeeded.
    assert (local.backup_dir / ".stacks" / "production" / prod_db).is_dir()
    assert not (local.backup_dir / ".stacks" / "production" / prod_db / prod_id).exists()
    assert not (local.backup_dir / local.db / prod_id).exists()
    assert local.run("backup", stack="staging") == 0
    assert local.run("list", stack="staging") == 0
    assert prod_id not in local.output()[0]
    staging_keys = local.s3.client().list_objects_v2(Bucket=local.bucket).get("Contents", [])
    assert staging_keys and not any(prod_id in o["Key"] for o in staging_keys)


def test_source_stack_without_grant_is_refused_naming_the_key(
    local: Local, project: Callable[[str, str], Path]
) -> None:
    production_yaml = (REPO / "Pulumi.production.yaml").read_text()
    project(
        "production", production_yaml.replace("name: vocab_app_production", f"name: {local.db}")
    )
    code = local.run("restore", "--source-stack", "staging", "latest", "--yes", stack="production")
    _, err = local.output()
    assert code == ExitCode.CONFIG
    assert "pgbackup:crossStackRead" in err
    assert local.databases() == [local.db]
