"""The database password never shows: not in any process's argv or environment while a backup
runs, not in the log file, not in the scripts' output; globals.sql (password hashes) is 0600."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

from pg_script_helpers import (
    TableLock,
    make_database,
    run_script,
    script_env,
    start_script,
    wait_until_dump_blocks,
)

from jobs.local.postgres import LocalPostgres


def _process_texts() -> list[bytes]:
    texts = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            for name in ("cmdline", "environ"):
                with contextlib.suppress(OSError):  # processes come and go
                    texts.append((entry / name).read_bytes())
    return texts


def test_password_appears_in_no_process_log_or_output(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    make_database(pg, dbname)
    pg.psql(f"CREATE ROLE secret_{dbname} LOGIN PASSWORD 'role-password-{dbname}'")
    private_tmp = backup_dir.parent / "tmp"
    private_tmp.mkdir()
    env = script_env(pg, base_env, dbname, backup_dir, TMPDIR=str(private_tmp))
    password = pg.password.encode()

    with TableLock(pg, dbname) as lock:
        step = start_script("backup.sh", env)
        wait_until_dump_blocks(pg, dbname)  # pg_dump, psql and the script are all running
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, check=True).stdout
        texts = _process_texts()
        lock.release()
        out, err = step.communicate(timeout=120)

    assert step.returncode == 0, err
    assert password not in ps
    assert not [t for t in texts if password in t]
    restore = run_script("restore.sh", env)
    assert restore.returncode == 0, restore.stderr
    logs = b"".join(p.read_bytes() for p in backup_dir.glob("backup_*.log"))
    assert logs
    for text in (
        logs,
        out.encode(),
        err.encode(),
        restore.stdout.encode(),
        restore.stderr.encode(),
    ):
        assert password not in text
        assert b"SCRAM-SHA-256$" not in text
        assert f"role-password-{dbname}".encode() not in text
    globals_files = list(backup_dir.glob(f"{dbname}/*/globals.sql"))
    assert globals_files and all(g.stat().st_mode & 0o777 == 0o600 for g in globals_files)
    assert b"SCRAM-SHA-256$" in globals_files[0].read_bytes()  # the hashes are in the set
    # The private pgpass (and its folder) is gone with the step.
    assert list(private_tmp.iterdir()) == []
