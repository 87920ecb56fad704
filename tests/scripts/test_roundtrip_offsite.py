"""The disaster the offsite copy is for: backup, upload, lose the volume and the database, fetch,
restore — and the database is back as it was, with its database-level state."""

from __future__ import annotations

import shutil
from pathlib import Path

from pg_script_helpers import (
    database_names,
    database_state,
    pg_dump_text,
    rich_database,
    script_env,
)
from s3_helpers import PREFIX, offsite_env, offsite_objects, run_script, summary

from jobs.local.postgres import LocalPostgres
from jobs.local.s3 import LocalS3


def test_backup_upload_lose_everything_fetch_restore(
    pg: LocalPostgres,
    base_env: dict[str, str],
    dbname: str,
    backup_dir: Path,
    s3: LocalS3,
    bucket: str,
) -> None:
    rich_database(pg, dbname, dbname[2:])
    before = pg_dump_text(pg, dbname)
    state_before = database_state(pg, dbname)
    offsite = offsite_env(s3, bucket, backup_dir)
    env = script_env(pg, base_env, dbname, backup_dir)
    env.update({k: v for k, v in offsite.items() if k.startswith(("AWS_", "S3_"))})
    # The PostgreSQL tools stay first on PATH; the aws CLI comes after them.
    env["PATH"] = f"{env['PATH']}:{offsite['PATH']}"

    backup = run_script("backup.sh", env)
    assert backup.returncode == 0, backup.stderr
    set_id = summary(backup)["id"]
    upload = run_script("upload.sh", env)
    assert upload.returncode == 0, upload.stderr
    assert summary(upload)["uploaded"] == [f"{dbname}/{set_id}"]
    assert f"{PREFIX}/{dbname}/{set_id}/manifest.json" in offsite_objects(s3, bucket)

    # Lose everything: a new, empty volume, and no database.
    shutil.rmtree(backup_dir)
    backup_dir.mkdir()
    pg.psql(f'DROP DATABASE "{dbname}" WITH (FORCE)')
    assert dbname not in database_names(pg)

    fetch = run_script("fetch.sh", {**env, "BACKUP_ID": "latest"})
    assert fetch.returncode == 0, fetch.stderr
    assert summary(fetch)["id"] == set_id
    restore = run_script("restore.sh", {**env, "BACKUP_ID": set_id})
    assert restore.returncode == 0, restore.stderr
    assert summary(restore)["status"] == "restored"

    assert pg_dump_text(pg, dbname) == before
    assert database_state(pg, dbname) == state_before
