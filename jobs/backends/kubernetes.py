"""The Kubernetes backend: the steps run as Jobs made from the stack's CronJob, in its namespace.

Talks to the API with the `kubernetes` client only (BatchV1Api, AppsV1Api, CoreV1Api); never
`pods/exec`. The three API objects are injectable: tests pass a fake that records calls.
Offsite listing and `download` read S3 from the operator's machine with boto3 (read-only calls).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jobs.backends import kube_jobs, steps
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
from jobs.backends.kube_jobs import Step
from jobs.backends.kube_runner import JobRunner, plain
from jobs.backends.offsite import OffsiteStore
from jobs.errors import ExitCode, PgBackupError
from jobs.stack import DatabaseObjects, StackContext

SCALE_DOWN_TIMEOUT_SECONDS = 300


def load_apis(kubeconfig: str | None, context: str | None) -> tuple[Any, Any, Any]:
    """BatchV1Api, AppsV1Api and CoreV1Api for the kubeconfig (the seam tests replace)."""
    from kubernetes import client, config

    try:
        config.load_kube_config(config_file=kubeconfig, context=context)
    except Exception as error:  # noqa: BLE001 - any failure here means "no cluster access"
        raise PgBackupError(
            f"cannot load the kubeconfig ({error})",
            "pass --kubeconfig/--context, or use --local",
            ExitCode.CONFIG,
        ) from error
    return client.BatchV1Api(), client.AppsV1Api(), client.CoreV1Api()


class KubernetesBackend(JobRunner):
    def __init__(
        self,
        stack: StackContext,
        batch: Any = None,
        apps: Any = None,
        core: Any = None,
        kubeconfig: str | None = None,
        context: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        poll_seconds: float = 2.0,
        endpoint_url: str | None = None,
    ) -> None:
        self.stack = stack
        self.namespace = stack.namespace
        self.stack_label = f"namespace {stack.namespace}"
        self.sleep = sleep
        self.poll_seconds = poll_seconds
        if endpoint_url is None:
            endpoint_url = os.environ.get("S3_ENDPOINT_URL") or stack.endpoint_url
        self.endpoint_url = endpoint_url
        self._kubeconfig, self._context = kubeconfig, context
        # Connected on first use, so configuration errors surface before cluster ones.
        self._apis: tuple[Any, Any, Any] | None = (
            (batch, apps, core) if None not in (batch, apps, core) else None
        )

    def _api(self, index: int) -> Any:
        if self._apis is None:
            self._apis = load_apis(self._kubeconfig, self._context)
        return self._apis[index]

    @property
    def batch(self) -> Any:
        return self._api(0)

    @property
    def apps(self) -> Any:
        return self._api(1)

    @property
    def core(self) -> Any:
        return self._api(2)

    def _objects(self, db: str) -> DatabaseObjects:
        return self.stack.database(db)

    def _cronjob(self, db: str) -> dict[str, Any]:
        return self._read_cronjob(self._objects(db).cronjob)

    def _read_cronjob(self, name: str) -> dict[str, Any]:
        cronjob = self._call(
            f"CronJob {name} in {self.namespace}",
            self.batch.read_namespaced_cron_job,
            name,
            self.namespace,
        )
        data: dict[str, Any] = plain(cronjob)
        data["metadata"].setdefault("namespace", self.namespace)
        return data

    def _jobs(self) -> list[dict[str, Any]]:
        listed = self._call(
            f"Jobs in {self.namespace}", self.batch.list_namespaced_job, self.namespace
        )
        return list(plain(listed).get("items") or [])

    def _active_jobs(self, db: str) -> list[str]:
        cronjob = self._objects(db).cronjob
        database_label = db.replace("_", "-")[:63]
        active = []
        for job in self._jobs():
            meta = job.get("metadata") or {}
            owned = any(o.get("name") == cronjob for o in meta.get("ownerReferences") or [])
            ours = (meta.get("labels") or {}).get(kube_jobs.DATABASE_LABEL) == database_label
            if (owned or ours) and (job.get("status") or {}).get("active"):
                active.append(str(meta.get("name")))
        return active

    def _step(
        self,
        db: str,
        purpose: str,
        step_list: list[Step],
        service_account: str | None = None,
        scratch: bool = False,
    ) -> dict[str, Any]:
        objects = self._objects(db)
        cronjob = self._cronjob(db)
        manifest = kube_jobs.step_job(
            cronjob,
            kube_jobs.job_name(objects.cronjob, purpose),
            objects.configmap,
            db,
            step_list,
            service_account=service_account,
            aws_image=self.stack.aws_cli_image,
            scratch=scratch,
            credentials_secret=(
                self.stack.reader_credentials_secret
                if service_account == self.stack.restore_service_account
                else ""
            ),
        )
        logs = self._run_job(manifest, step_list[-1].script)
        return steps.summary(logs, step_list[-1].script) | {"_logs": logs}

    # -- offsite -----------------------------------------------------------------------------
    def _store(self, source_stack: str | None = None) -> OffsiteStore:
        if source_stack:
            grant = self.stack.grant_for(source_stack)
            return OffsiteStore(grant.bucket, grant.prefix, self.endpoint_url)
        if not self.stack.bucket:
            raise PgBackupError(
                f"stack {self.stack.name} has no offsite bucket",
                f"set pgbackup:offsite.bucketName in Pulumi.{self.stack.name}.yaml",
                ExitCode.CONFIG,
            )
        return OffsiteStore(self.stack.bucket, self.stack.prefix, self.endpoint_url)

    def _s3_env(self, source_stack: str | None) -> dict[str, str]:
        """Another stack's bucket and prefix: this stack's reader credentials cover it when (and
        only when) `crossStackRead` grants it."""
        if not source_stack:
            return {}
        grant = self.stack.grant_for(source_stack)
        return {"S3_BUCKET": grant.bucket, "S3_PREFIX": grant.prefix}

    # -- the API -----------------------------------------------------------------------------
    def run_backup(self, db: str, keep_all: bool = False) -> BackupResult:
        active = self._active_jobs(db)
        if active:
            raise PgBackupError(
                f"a backup or restore Job of {db} is already running ({', '.join(active)})",
                f"wait for it (kubectl -n {self.namespace} get jobs) and try again",
                ExitCode.LOCKED,
            )
        objects = self._objects(db)
        cronjob = self._cronjob(db)
        manifest = kube_jobs.manual_job(cronjob, kube_jobs.job_name(objects.cronjob, "manual"))
        if keep_all:
            kube_jobs.add_env(manifest, {"SKIP_RETENTION": "1"})
        logs = self._run_job(manifest, "backup")
        backups = [line for line in steps.json_lines(logs) if line.get("event") == "backup"]
        result = backups[-1] if backups else steps.summary(logs, "backup")
        return BackupResult(
            database=str(result.get("database", db)),
            id=str(result["id"]),
            bytes=int(result.get("bytes", 0)),
            seconds=float(result.get("seconds", 0)),
            status=str(result.get("status", "")),
            path=str(result.get("path", "")),
            log=f"job/{manifest['metadata']['name']}",
        )

    def run_cronjob_now(self, name: str, step: str, env: dict[str, str] | None = None) -> str:
        """A Job made from the CronJob `name` (as `kubectl create job --from=cronjob`), with `env`
        set in its containers, followed to its end; returns its log. Used for steps with a
        CronJob of their own, e.g. the drill."""
        manifest = kube_jobs.manual_job(
            self._read_cronjob(name), kube_jobs.job_name(name, "manual")
        )
        if env:
            kube_jobs.add_env(manifest, env)
        return self._run_job(manifest, step)

    def _volume(self, db: str) -> tuple[list[BackupSet], dict[str, Any]]:
        result = self._step(db, "inventory", [Step("inventory.sh", {})])
        return steps.inventory(result["_logs"], db)

    def list_sets(self, db: str | None, where: Where | None = None) -> list[BackupSet]:
        names = [db] if db else [d.name for d in self.stack.databases]
        sets: list[BackupSet] = []
        for name in names:
            if where in (None, "volume"):
                sets.extend(self._volume(name)[0])
            if where in (None, "offsite"):
                sets.extend(self._store().list_sets(name))
        return sets

    def resolve(
        self, db: str, backup_id: str, where: Where, source_stack: str | None = None
    ) -> str:
        if where == "offsite" or source_stack:
            return self._store(source_stack).resolve(db, backup_id)
        if backup_id.endswith(".sql.gz"):
            return backup_id
        volume = f"the volume {self._objects(db).pvc}"
        return steps.pick_volume_set(self._volume(db)[0], db, backup_id, volume)

    def verify(self, db: str, backup_id: str, where: Where = "volume") -> VerifyResult:
        env = {"BACKUP_ID": backup_id}
        if where == "volume":
            result = self._step(db, "verify", [Step("verify.sh", env)])
        else:
            result = self._step(
                db,
                "verify",
                [Step("fetch.sh", env), Step("verify.sh", env)],
                service_account=self.stack.restore_service_account,
                scratch=True,
            )
        result.pop("_logs", None)
        return VerifyResult(
            db,
            str(result.get("id", backup_id)),
            where,
            str(result.get("status", "verified")) == "verified",
            result,
        )

    def fetch(
        self,
        db: str,
        backup_id: str,
        source_stack: str | None = None,
        source_database: str | None = None,
    ) -> str:
        env = {
            **steps.fetch_env(backup_id, source_database, source_stack),
            **self._s3_env(source_stack),
        }
        result = self._step(
            db,
            "fetch",
            [Step("fetch.sh", env)],
            service_account=self.stack.restore_service_account,
        )
        return str(result.get("id", backup_id))

    def restore_prepare(
        self,
        db: str,
        backup_id: str,
        target: str | None = None,
        source_database: str | None = None,
        source_stack: str | None = None,
    ) -> PreparedRestore:
        env = steps.restore_env(db, backup_id, target, source_database, source_stack)
        result = self._step(
            db,
            "restore",
            [Step("restore.sh", env)],
            service_account=self.stack.restore_service_account,
        )
        result.pop("_logs", None)
        return steps.prepared_restore(db, backup_id, target, source_database, source_stack, result)

    def restore_swap(self, prepared: PreparedRestore) -> RestoreResult:
        env = steps.swap_env(prepared)
        result = self._step(
            prepared.database,
            "swap",
            [Step("restore.sh", env)],
            service_account=self.stack.restore_service_account,
        )
        result.pop("_logs", None)
        return steps.restore_result(prepared, result)

    def app_replicas(self, missing_ok: bool = False) -> dict[str, int]:
        replicas = {}
        for name in self.stack.app_deployments:
            try:
                scale = plain(
                    self._call(
                        f"Deployment {name} in {self.namespace}",
                        self.apps.read_namespaced_deployment_scale,
                        name,
                        self.namespace,
                    )
                )
            except PgBackupError as error:
                if missing_ok and error.code == ExitCode.NOT_FOUND:
                    continue
                raise
            replicas[name] = int((scale.get("spec") or {}).get("replicas") or 0)
        return replicas

    def suspend_backups(self, db: str, suspended: bool) -> bool:
        name = self._objects(db).cronjob
        before = bool((self._cronjob(db).get("spec") or {}).get("suspend"))
        if before != suspended:
            self._call(
                f"{'suspend' if suspended else 'resume'} CronJob {name}",
                self.batch.patch_namespaced_cron_job,
                name,
                self.namespace,
                {"spec": {"suspend": suspended}},
            )
        return before

    def scale_app(self, replicas_by_deployment: dict[str, int]) -> None:
        for name, count in replicas_by_deployment.items():
            self._call(
                f"scale Deployment {name} to {count}",
                self.apps.patch_namespaced_deployment_scale,
                name,
                self.namespace,
                {"spec": {"replicas": count}},
            )
        for name, count in replicas_by_deployment.items():
            if count == 0:
                self._wait_scaled_down(name)

    def _wait_scaled_down(self, name: str) -> None:
        deadline = time.monotonic() + SCALE_DOWN_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            scale = plain(
                self._call(
                    f"Deployment {name}",
                    self.apps.read_namespaced_deployment_scale,
                    name,
                    self.namespace,
                )
            )
            if not (scale.get("status") or {}).get("replicas"):
                return
            self.sleep(self.poll_seconds)
        # The swap terminates remaining connections anyway; say so rather than fail.
        print(
            f"    {name}: pods still terminating; the swap will cut their connections",
            file=sys.stderr,
        )

    def download(
        self, db: str, backup_id: str, to_dir: Path, source_stack: str | None = None
    ) -> DownloadResult:
        return self._store(source_stack).download(db, backup_id, to_dir)

    def _last_failure(self, cronjob: str, jobs: list[dict[str, Any]]) -> str:
        """When the newest failed Job of `cronjob` (scheduled or made from it) failed, or ""."""
        last = ""
        for job in jobs:
            meta = job.get("metadata") or {}
            if not any(o.get("name") == cronjob for o in meta.get("ownerReferences") or []):
                continue
            for condition in (job.get("status") or {}).get("conditions") or []:
                if condition.get("type") == "Failed" and condition.get("status") == "True":
                    last = max(last, str(condition.get("lastTransitionTime") or ""))
        return last

    def _drill_runs(self, db: str, jobs: list[dict[str, Any]]) -> tuple[str, str] | None:
        """The drill CronJob's last success and failure; None when the stack has no drill."""
        name = self.stack.database(db).drill_cronjob
        try:
            cronjob = self._read_cronjob(name)
        except PgBackupError as error:
            if error.code == ExitCode.NOT_FOUND:
                return None
            raise
        success = str((cronjob.get("status") or {}).get("lastSuccessfulTime") or "")
        return success, self._last_failure(name, jobs)

    def status(self, db: str) -> StatusReport:
        objects = self._objects(db)
        cronjob = self._cronjob(db)
        spec, status = cronjob.get("spec") or {}, cronjob.get("status") or {}
        jobs = self._jobs()
        notes: list[str] = []
        volume_sets, volume = self._volume(db)
        try:
            offsite = self._store().list_sets(db)
        except PgBackupError as error:
            offsite = []
            notes.append(f"offsite not listed: {error.message}")
        else:
            missing = steps.not_offsite_note(volume_sets, offsite)
            notes += [missing] if missing else []
        return StatusReport(
            database=db,
            schedule=f"{spec.get('schedule', '')} {spec.get('timeZone') or ''}".strip(),
            suspended=bool(spec.get("suspend")),
            last_success=str(status.get("lastSuccessfulTime") or ""),
            last_failure=self._last_failure(objects.cronjob, jobs),
            newest_volume=next((s for s in volume_sets if s.verified), None),
            newest_offsite=next((s for s in offsite if s.verified), None),
            volume_size_bytes=volume.get("size_bytes"),
            volume_used_bytes=volume.get("used_bytes"),
            active_jobs=tuple(self._active_jobs(db)),
            # Each database has a volume of its own: no other folder belongs there.
            other_folders=steps.unexpected_folders(volume.get("folders") or [], expected=()),
            notes=tuple(notes),
            drill_runs=self._drill_runs(db, jobs),
        )
