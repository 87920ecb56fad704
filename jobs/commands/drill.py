"""`pgbackup drill`: prove the newest set restores, without touching the live database.

The set is restored into a scratch database on a throwaway server (`jobs/scripts/drill.sh`):
locally a `LocalPostgres` started for the drill, on Kubernetes a server inside the drill Job's pod
(made from the drill CronJob). Rows are checked against the manifest, amcheck runs where it is
installed, everything is dropped. The result is recorded where `status` can show it:
`$BACKUP_DIR/<db>/last_drill.json` locally; on Kubernetes the drill Job's status (what the alert
reads) and `~/.local/state/pgbackup/drill-<stack>-<db>.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from jobs.backends import add_local_options, open_backend
from jobs.backends.local import LocalBackend
from jobs.backends.steps import SCRIPTS_DIR, step_failed, summary
from jobs.dr.state import default_state_file
from jobs.errors import ExitCode, PgBackupError
from jobs.ui import info, out, paint

RESULT_FILE = "last_drill.json"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "drill",
        help="restore the newest set into a scratch database on a throwaway server and check it",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--database", "-d", help="which configured database (default: the only one)"
    )
    parser.add_argument(
        "--from",
        dest="where",
        choices=("volume", "offsite"),
        default="volume",
        help="drill the newest set on the backup volume (default) or the newest offsite",
    )
    parser.add_argument("--backup-id", default="latest", help="a set id (default: latest)")
    add_local_options(parser)
    parser.set_defaults(run=run)


def write_result(path: Path, result: dict[str, Any]) -> None:
    """The drill's JSON result, written to a temporary name and renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    os.replace(temp, path)


def run_drill_script(env: dict[str, str]) -> dict[str, Any]:
    """drill.sh as a subprocess; its JSON result, or its error as ours."""
    process = subprocess.run(
        ["bash", str(SCRIPTS_DIR / "drill.sh")],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    for line in process.stderr.splitlines():
        info(f"    {line}")
    if process.returncode != 0:
        raise step_failed("drill.sh", process.returncode, process.stderr + process.stdout)
    return summary(process.stdout, "drill.sh")


def _local_drill(backend: LocalBackend, db: str, where: str, backup_id: str) -> dict[str, Any]:
    from jobs.local.postgres import LocalPostgres

    scratch_volume: Path | None = None
    backup_dir = backend.backup_dir
    server = LocalPostgres()
    try:
        if where == "offsite":
            # Fetched into a folder of its own: the volume stays as it is.
            scratch_volume = Path(tempfile.mkdtemp(prefix="pgbackup-drill-"))
            settings = backend.settings
            fetcher = LocalBackend(
                type(settings)(
                    env=settings.env,
                    backup_dir=str(scratch_volume),
                    bucket=settings.bucket,
                    prefix=settings.prefix,
                    endpoint_url=settings.endpoint_url,
                )
            )
            backup_id = fetcher.fetch(db, backup_id)
            backup_dir = scratch_volume
        info(paint("==> start a throwaway PostgreSQL server for the drill (127.0.0.1)", "bold"))
        server.init().start()
        env = {k: v for k, v in backend.settings.env.items() if not k.startswith("PG")}
        env.update(server.env(db))
        env["PATH"] = f"{server.bindir}{os.pathsep}{env.get('PATH', '')}"
        env.update(
            {"BACKUP_DIR": str(backup_dir), "BACKUP_ID": backup_id, "DRILL_SERVER": "external"}
        )
        info(paint(f"==> drill set {backup_id} of {db} from the {where}", "bold"))
        return run_drill_script(env)
    finally:
        server.destroy()
        if scratch_volume is not None:
            shutil.rmtree(scratch_volume, ignore_errors=True)


def _kubernetes_drill(target: Any, db: str, where: str, backup_id: str) -> dict[str, Any]:
    """A Job made from the drill CronJob, followed to its end (its status is the record). An
    offsite set is fetched onto the volume first (the reader's Job, checksums verified): the
    copy a disaster recovery would restore is the one drilled."""
    if where == "offsite":
        backup_id = target.backend.resolve(db, backup_id, "offsite")
        info(paint(f"==> fetch {backup_id} of {db} from offsite onto the volume", "bold"))
        backup_id = target.backend.fetch(db, backup_id)
    name = target.stack.database(db).drill_cronjob
    chosen = None if backup_id == "latest" else {"BACKUP_ID": backup_id}  # the template's own
    logs = target.backend.run_cronjob_now(name, "drill.sh", chosen)
    return summary(logs, "drill.sh")


def drill_record(target: Any, db: str) -> Path:
    """Where the last drill's result is kept (what `status` shows): beside the sets locally; on
    Kubernetes the Job's status is the record, and a copy stays on the operator's machine."""
    if isinstance(target.backend, LocalBackend):
        return Path(target.backend.backup_dir) / db / RESULT_FILE
    return default_state_file(target.stack_name).with_name(f"drill-{target.stack_name}-{db}.json")


def run(args: argparse.Namespace) -> int:
    target = open_backend(args)
    db = target.database
    try:
        if isinstance(target.backend, LocalBackend):
            result = _local_drill(target.backend, db, args.where, args.backup_id)
        else:
            result = _kubernetes_drill(target, db, args.where, args.backup_id)
    except PgBackupError as error:
        failed = {
            "event": "drill",
            "database": db,
            "status": "failed",
            "exit_code": int(error.code),
            "error": str(error),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if isinstance(target.backend, LocalBackend) and target.backend.backup_dir.exists():
            write_result(drill_record(target, db), failed)
        info(paint(f"drill FAILED: {error.message}", "red"))
        raise
    record = drill_record(target, db)
    write_result(record, result)
    out(
        f"drill passed: set {result.get('id')} of {db} restored on a throwaway server, "
        f"{result.get('tables')} tables / {result.get('rows')} rows match the manifest, "
        f"amcheck {result.get('amcheck')}, {result.get('seconds')} s (recorded in {record})"
    )
    return int(ExitCode.OK)
