"""Fixtures of the DR tests: a sample database of the vocabulary app and a verified set of it."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jobs.dr.sample_app import load_sql
from jobs.local.postgres import LocalPostgres

SCRIPTS = Path(__file__).resolve().parents[2] / "jobs" / "scripts"


@dataclass(frozen=True)
class BackedUp:
    database: str
    backup_dir: Path
    id: str

    @property
    def set_dir(self) -> Path:
        return self.backup_dir / self.database / self.id


def run_script(name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPTS / name)], env=env, capture_output=True, text=True, check=False,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder the server's OS user can read too (pytest's own dirs are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="pgbackup-dr-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def backed_up(
    pg: LocalPostgres, dbname: str, base_env: dict[str, str], shared_dir: Path
) -> BackedUp:
    """`dbname` filled with a small copy of the app's data, and one verified set of it."""
    pg.psql(f'CREATE DATABASE "{dbname}" TEMPLATE template0 ENCODING UTF8')
    pg.psql(load_sql(users=20, lists=30, words=300, attempts=200), dbname)
    backup_dir = shared_dir / "backups"
    backup_dir.mkdir()
    env = {**base_env, **pg.env(dbname), "BACKUP_DIR": str(backup_dir)}
    done = run_script("backup.sh", env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    return BackedUp(dbname, backup_dir, str(summary["id"]))


def give_to_server_user(path: Path) -> None:
    """When tests run as root, the drill's throwaway server runs as `postgres`: let it read."""
    if os.geteuid() != 0:
        return
    info = pwd.getpwnam("postgres")
    for root, dirs, files in os.walk(path):
        os.chown(root, info.pw_uid, info.pw_gid)
        for name in [*dirs, *files]:
            os.chown(os.path.join(root, name), info.pw_uid, info.pw_gid)
