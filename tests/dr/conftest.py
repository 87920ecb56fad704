"""Fixtures of the DR tests: a sample database of the vocabulary app and a verified set of it."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from dr_helpers import BackedUp, run_script

from jobs.dr.sample_app import load_sql
from jobs.local.postgres import LocalPostgres


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder the server's OS user can read too (pytest's own dirs are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="pgbackup-dr-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def _master_set(pg: LocalPostgres) -> Iterator[BackedUp]:
    """One database and one backup of it per module (a backup takes seconds on a busy machine)."""
    name = f"dr_{uuid.uuid4().hex[:10]}"
    pg.psql(f'CREATE DATABASE "{name}" TEMPLATE template0 ENCODING UTF8')
    pg.psql(load_sql(users=20, lists=30, words=300, attempts=200), name)
    backup_dir = Path(tempfile.mkdtemp(prefix="pgbackup-dr-master-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_", "S3_"))}
    env["PATH"] = f"{pg.bindir}{os.pathsep}{env.get('PATH', '')}"
    done = run_script("backup.sh", {**env, **pg.env(name), "BACKUP_DIR": str(backup_dir)})
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    yield BackedUp(name, backup_dir, str(summary["id"]))
    shutil.rmtree(backup_dir, ignore_errors=True)
    leftovers = f"SELECT datname FROM pg_database WHERE datname LIKE '{name}%'"  # noqa: S608
    for db in pg.psql(leftovers).split():
        pg.psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


@pytest.fixture
def backed_up(_master_set: BackedUp, shared_dir: Path) -> BackedUp:
    """The sample database and a copy of its verified set that the test may damage."""
    backup_dir = shared_dir / "backups"
    shutil.copytree(_master_set.backup_dir, backup_dir)
    return BackedUp(_master_set.database, backup_dir, _master_set.id)
