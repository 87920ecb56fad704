"""Helpers of the DR tests (fixtures are in conftest.py)."""

from __future__ import annotations

import os
import pwd
import subprocess
from dataclasses import dataclass
from pathlib import Path

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
        ["bash", str(SCRIPTS / name)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def give_to_server_user(path: Path) -> None:
    """When tests run as root, the drill's throwaway server runs as `postgres`: let it read."""
    if os.geteuid() != 0:
        return
    info = pwd.getpwnam("postgres")
    for root, dirs, files in os.walk(path):
        os.chown(root, info.pw_uid, info.pw_gid)
        for name in [*dirs, *files]:
            os.chown(os.path.join(root, name), info.pw_uid, info.pw_gid)
