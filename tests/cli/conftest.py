"""Fixtures for the operator CLI's tests: a local backend wired to the real PostgreSQL and S3."""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from clihelp import Local, seed

from jobs.local.postgres import LocalPostgres
from jobs.local.s3 import LocalS3

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def local(
    pg: LocalPostgres,
    s3: LocalS3,
    bucket: str,
    dbname: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Local:
    """A seeded database, an empty volume folder, the process environment pointing at them (as an
    operator's shell would), stdin not a terminal unless a test types. No offsite until a test
    calls `local.with_offsite()` (an upload costs seconds of aws CLI start-up per file)."""
    for key in list(os.environ):
        if key.startswith(("PG", "AWS_", "S3_", "BACKUP_")):
            monkeypatch.delenv(key)
    backup_dir = tmp_path / "backups"
    backup_dir.mkdir()
    env = {
        **pg.env(dbname),
        **s3.env(),
        "S3_PREFIX": "postgres",
        "BACKUP_DIR": str(backup_dir),
        "DUMP_JOBS": "2",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    seed(pg, dbname)
    return Local(pg, s3, dbname, bucket, backup_dir, capsys, monkeypatch)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], Path]:
    """A project folder of our own (Pulumi.yaml + stack files written by the test)."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(REPO / "Pulumi.yaml", root / "Pulumi.yaml")
    monkeypatch.setenv("PGBACKUP_PROJECT_DIR", str(root))

    def write(stack: str, text: str) -> Path:
        path = root / f"Pulumi.{stack}.yaml"
        path.write_text(text)
        return path

    return write
