"""The local backend: the same `jobs/scripts/*.sh` as subprocesses, against libpq's PG* variables
(password only through `PGPASSWORD_FILE`/`PGPASSFILE`), `BACKUP_DIR` and an S3 endpoint.

There are no app Deployments here: `app_replicas` is empty and `scale_app` does nothing, so the
downtime of a local restore is exactly the swap.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from jobs.backends import steps
from jobs.backends.base import (
    BackupResult,
    BackupSet,
    DownloadResult,
    PreparedRestore,
    RestoreResult,
    StatusReport,
    VerifyResult,
    Where,
)
from jobs.backends.offsite import OffsiteStore
from jobs.errors import ExitCode, PgBackupError
from jobs.stack import CrossStackGrant, StackContext


@dataclass
class LocalSettings:
    """Where the local steps read and write. Options win over the environment."""

    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    backup_dir: str = ""
    bucket: str = ""
    prefix: str = ""
    endpoint_url: str = ""

    @classmethod
    def from_environment(
        cls,
        stack: StackContext | None,
        backup_dir: str | None = None,
        bucket: str | None = None,
        endpoint_url: str | None = None,
        env: dict[str, str] | None = None,
    ) -> LocalSettings:
        source = dict(os.environ if env is None else env)
        return cls(
            env=source,
            backup_dir=backup_dir or source.get("BACKUP_DIR", ""),
            bucket=bucket or source.get("S3_BUCKET") or (stack.bucket if stack else ""),
            prefix=source.get("S3_PREFIX") or (stack.prefix if stack else "") or "postgres",
            endpoint_url=endpoint_url or source.get("S3_ENDPOINT_URL", ""),
        )


def _bindir(env: dict[str, str]) -> str:
    explicit = env.get("PG_BINDIR")
    if explicit:
        return explicit
    from jobs.local.postgres import find_bindir

    try:
        return str(find_bindir())
    except RuntimeError as error:
        raise PgBackupError(
            str(error), "install the PostgreSQL client tools", ExitCode.CONFIG
        ) from error


def _pump(stream: IO[str], sink: list[str], echo: bool) -> None:
    for line in stream:
        sink.append(line)
        if echo:
            sys.stderr.write(f"    {line}")
            sys.stderr.flush()


class LocalBackend:
    stack_label = "local"

    def __init__(self, settings: LocalSettings, stack: StackContext | None = None) -> None:
        self.settings = settings
        self.stack = stack
        if not settings.backup_dir:
            raise PgBackupError(
                "BACKUP_DIR is not set for the local backend",
                "export BACKUP_DIR=/path/to/backups or pass --backup-dir",
                ExitCode.CONFIG,
            )
        self.backup_dir = Path(settings.backup_dir)
        self.stack_label = f"local ({settings.env.get('PGHOST', 'socket')}, {self.backup_dir})"

    # -- running a step ----------------------------------------------------------------------
    def _env(self, db: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in self.settings.env.items() if k not in steps.PER_RUN_VARIABLES}
        env["PATH"] = f"{_bindir(env)}{os.pathsep}{env.get('PATH', '')}"
        env["PGDATABASE"] = db
        env["BACKUP_DIR"] = str(self.backup_dir)
        if self.settings.bucket:
            env["S3_BUCKET"] = self.settings.bucket
        env["S3_PREFIX"] = self.settings.prefix
        env["S3_ENDPOINT_URL"] = self.settings.endpoint_url
        env.update(extra or {})
        return env

    def _run(
        self, script: str, db: str, extra: dict[str, str] | None = None, echo: bool = True
    ) -> tuple[str, str]:
        """Run one step; returns (stdout, stderr) or raises the step's error."""
        path = steps.SCRIPTS_DIR / script
        if not path.exists():
            raise PgBackupError(
                f"step {script} is missing from {steps.SCRIPTS_DIR}",
                "reinstall pgbackup (the scripts ship in the package)",
                ExitCode.CONFIG,
            )
        process = subprocess.Popen(
            ["bash", str(path)],
            env=self._env(db, extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        out: list[str] = []
        err: list[str] = []
        assert process.stdout and process.stderr
        readers = [
            threading.Thread(target=_pump, args=(process.stdout, out, False)),
            threading.Thread(target=_pump, args=(process.stderr, err, echo)),
        ]
        for reader in readers:
            reader.start()
        code = process.wait()
        for reader in readers:
            reader.join()
        stdout, stderr = "".join(out), "".join(err)
        if code != 0:
            raise steps.step_failed(script, code, stderr + stdout)
        return stdout, stderr

    def _store(self, source_stack: str | None = None) -> OffsiteStore:
        bucket, prefix = self.settings.bucket, self.settings.prefix
        if source_stack:
            grant = self._grant(source_stack)
            bucket, prefix = grant.bucket, grant.prefix
        if not bucket:
            raise PgBackupError(
                "no offsite bucket configured",
                "set S3_BUCKET (or pgbackup:offsite.bucketName in the stack file)",
                ExitCode.CONFIG,
            )
        return OffsiteStore(bucket, prefix, self.settings.endpoint_url, self.settings.env)

    def _grant(self, source_stack: str) -> CrossStackGrant:
        if self.stack is None:
            raise PgBackupError(
                f"--source-stack {source_stack} needs this stack's crossStackRead config",
                "pass --stack with a stack file that grants it",
                ExitCode.CONFIG,
            )
        return self.stack.grant_for(source_stack)

    def _s3_env(self, source_stack: str | None) -> dict[str, str]:
        store = self._store(source_stack)
        return {"S3_BUCKET": store.bucket, "S3_PREFIX": store.prefix}

    # -- the API -----------------------------------------------------------------------------
    def run_backup(self, db: str, keep_all: bool = False) -> BackupResult:
        extra = {"SKIP_RETENTION": "1"} if keep_all else {}
        if self.settings.bucket:  # the sets go offsite after the backup: keep any not there yet
            extra["RETAIN_UNTIL_OFFSITE"] = "1"
        stdout, _ = self._run("backup.sh", db, extra or None)
        result = steps.summary(stdout, "backup.sh")
        if self.settings.bucket:
            self._run("upload.sh", db)
        return BackupResult(
            database=str(result.get("database", db)),
            id=str(result["id"]),
            bytes=int(result.get("bytes", 0)),
            seconds=float(result.get("seconds", 0)),
            status=str(result.get("status", "")),
            path=str(result.get("path", "")),
            log=str(result.get("log", "")),
        )

    def _volume_sets(self, db: str | None) -> tuple[list[BackupSet], dict[str, Any]]:
        stdout, _ = self._run("inventory.sh", db or "", echo=False)
        return steps.inventory(stdout, db)

    def list_sets(self, db: str | None, where: Where | None = None) -> list[BackupSet]:
        sets: list[BackupSet] = []
        if where in (None, "volume"):
            sets.extend(self._volume_sets(db)[0])
        if where in (None, "offsite") and (self.settings.bucket or where == "offsite"):
            sets.extend(self._store().list_sets(db))
        return sets

    def resolve(
        self, db: str, backup_id: str, where: Where, source_stack: str | None = None
    ) -> str:
        if where == "offsite" or source_stack:
            return self._store(source_stack).resolve(db, backup_id)
        if backup_id.endswith(".sql.gz"):
            return backup_id  # legacy dump, restorable by explicit name only
        return steps.pick_volume_set(self._volume_sets(db)[0], db, backup_id, str(self.backup_dir))

    def verify(self, db: str, backup_id: str, where: Where = "volume") -> VerifyResult:
        if where == "volume":
            stdout, _ = self._run("verify.sh", db, {"BACKUP_ID": backup_id})
            result = steps.summary(stdout, "verify.sh")
        else:
            scratch = Path(tempfile.mkdtemp(prefix="pgbackup-verify-"))
            try:
                extra = {"BACKUP_ID": backup_id, "BACKUP_DIR": str(scratch)}
                stdout, _ = self._run("fetch.sh", db, extra)
                fetched = steps.summary(stdout, "fetch.sh")
                extra["BACKUP_ID"] = str(fetched.get("id", backup_id))
                stdout, _ = self._run("verify.sh", db, extra)
                result = steps.summary(stdout, "verify.sh")
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        return VerifyResult(
            database=db,
            id=str(result.get("id", backup_id)),
            where=where,
            ok=str(result.get("status", "verified")) == "verified",
            detail=result,
        )

    def fetch(
        self,
        db: str,
        backup_id: str,
        source_stack: str | None = None,
        source_database: str | None = None,
    ) -> str:
        extra = {
            **steps.fetch_env(backup_id, source_database, source_stack),
            **self._s3_env(source_stack),
        }
        stdout, _ = self._run("fetch.sh", db, extra)
        return str(steps.summary(stdout, "fetch.sh").get("id", backup_id))

    def restore_prepare(
        self,
        db: str,
        backup_id: str,
        target: str | None = None,
        source_database: str | None = None,
        source_stack: str | None = None,
    ) -> PreparedRestore:
        extra = steps.restore_env(db, backup_id, target, source_database, source_stack)
        stdout, _ = self._run("restore.sh", db, extra)
        result = steps.summary(stdout, "restore.sh")
        return steps.prepared_restore(db, backup_id, target, source_database, source_stack, result)

    def restore_swap(self, prepared: PreparedRestore) -> RestoreResult:
        if prepared.target:
            raise PgBackupError(
                f"{prepared.target} is a new database: there is nothing to swap",
                "connect to it directly",
                ExitCode.USAGE,
            )
        extra = steps.swap_env(prepared)
        stdout, _ = self._run("restore.sh", prepared.database, extra)
        return steps.restore_result(prepared, steps.summary(stdout, "restore.sh"))

    def app_replicas(self, missing_ok: bool = False) -> dict[str, int]:
        return {}

    def scale_app(self, replicas_by_deployment: dict[str, int]) -> None:
        return None

    def suspend_backups(self, db: str, suspended: bool) -> bool:
        return False  # no CronJob here: the user's own scheduler runs backups

    def download(
        self, db: str, backup_id: str, to_dir: Path, source_stack: str | None = None
    ) -> DownloadResult:
        extra = {"BACKUP_ID": backup_id, "FETCH_TO": str(to_dir), **self._s3_env(source_stack)}
        stdout, _ = self._run("fetch.sh", db, extra)
        result = steps.summary(stdout, "fetch.sh")
        restored_id = str(result.get("id", backup_id))
        path = Path(str(result.get("path") or to_dir / restored_id))
        files = [p for p in path.rglob("*") if p.is_file()] if path.exists() else []
        return DownloadResult(
            database=db,
            id=restored_id,
            path=path,
            bytes=int(result.get("bytes") or sum(p.stat().st_size for p in files)),
            files=len(files),
        )

    def status(self, db: str) -> StatusReport:
        volume_sets, volume = self._volume_sets(db)
        offsite = [s for s in self._store().list_sets(db)] if self.settings.bucket else []
        verified = [s for s in volume_sets if s.verified]
        failed = [s for s in volume_sets if s.status == "failed"]
        usage = shutil.disk_usage(self.backup_dir) if self.backup_dir.exists() else None
        notes = ["local backend: no CronJob; schedule backups with your own scheduler"]
        missing = steps.not_offsite_note(volume_sets, offsite) if self.settings.bucket else None
        if missing:
            notes.append(missing)
        return StatusReport(
            database=db,
            schedule="",
            suspended=None,
            last_success=verified[0].finished_at or verified[0].id if verified else "",
            last_failure=failed[0].finished_at or failed[0].id if failed else "",
            newest_volume=verified[0] if verified else None,
            newest_offsite=next((s for s in offsite if s.verified), None),
            volume_size_bytes=int(volume.get("size_bytes") or (usage.total if usage else 0)),
            volume_used_bytes=int(volume.get("used_bytes") or (usage.used if usage else 0)),
            notes=tuple(notes),
            # BACKUP_DIR holds the folders of all the stack's databases (without a stack: any).
            other_folders=steps.unexpected_folders(
                volume.get("folders") or [],
                expected=[d.name for d in self.stack.databases] if self.stack else None,
            ),
        )
