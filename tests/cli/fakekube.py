"""A fake of the three Kubernetes API objects at the client seam, recording every call.

It answers like the API server would for what the backend uses: the stack's CronJob, Jobs that
run to completion at once (their pod's log is the step's canned output), Deployments' scale.
Nothing here decides behaviour under test; it only records and replies.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

NAMESPACE = "vocab-app-staging"
CRONJOB = "vocab-app-postgres-backup"
BACKUP_ID = "20260119t020000z"


class NotFound(Exception):
    status = 404


def staging_cronjob(namespace: str = NAMESPACE, database: str = "vocab_app_staging") -> dict:
    """A CronJob shaped like the one the stack declares (camelCase, as the API returns it)."""
    security = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": CRONJOB,
            "namespace": namespace,
            "uid": "3f1c2a9e-cron-uid",
            "labels": {"app": "postgres-backup"},
        },
        "spec": {
            "schedule": "0 2 * * *",
            "timeZone": "Etc/UTC",
            "suspend": False,
            "concurrencyPolicy": "Forbid",
            "jobTemplate": {
                "metadata": {
                    "labels": {"app": "postgres-backup", "app.kubernetes.io/part-of": "pgbackup"},
                    "annotations": {"pgbackup.io/database": database},
                },
                "spec": {
                    "backoffLimit": 1,
                    "activeDeadlineSeconds": 7200,
                    "ttlSecondsAfterFinished": 604800,
                    "template": {
                        "metadata": {"labels": {"app": "postgres-backup"}},
                        "spec": {
                            "serviceAccountName": "vocab-app-postgres-backup",
                            "automountServiceAccountToken": False,
                            "restartPolicy": "Never",
                            "securityContext": {
                                "runAsNonRoot": True,
                                "runAsUser": 10001,
                                "fsGroup": 10001,
                                "seccompProfile": {"type": "RuntimeDefault"},
                            },
                            "initContainers": [
                                {
                                    "name": "backup",
                                    "image": "postgres:16.4@sha256:" + "0" * 64,
                                    "command": ["bash", "/scripts/backup.sh"],
                                    "env": [
                                        {"name": "PGDATABASE", "value": database},
                                        {"name": "BACKUP_DIR", "value": "/backups"},
                                        {
                                            "name": "PGPASSWORD_FILE",
                                            "value": "/etc/pgbackup/db/password",
                                        },
                                    ],
                                    "securityContext": security,
                                    "volumeMounts": [
                                        {"name": "backups", "mountPath": "/backups"},
                                        {
                                            "name": "scripts",
                                            "mountPath": "/scripts",
                                            "readOnly": True,
                                        },
                                        {"name": "db-password", "mountPath": "/etc/pgbackup/db"},
                                    ],
                                }
                            ],
                            "containers": [
                                {
                                    "name": "upload",
                                    "image": "amazon/aws-cli:2.17.0@sha256:" + "0" * 64,
                                    "command": ["bash", "/scripts/upload.sh"],
                                    "env": [
                                        {"name": "PGDATABASE", "value": database},
                                        {"name": "BACKUP_DIR", "value": "/backups"},
                                        {
                                            "name": "S3_BUCKET",
                                            "value": "vocab-app-staging-postgres-backups",
                                        },
                                        {"name": "S3_PREFIX", "value": "postgres"},
                                        {"name": "HOME", "value": "/home/aws"},
                                    ],
                                    "securityContext": security,
                                    "volumeMounts": [
                                        {"name": "backups", "mountPath": "/backups"},
                                        {
                                            "name": "scripts",
                                            "mountPath": "/scripts",
                                            "readOnly": True,
                                        },
                                        {"name": "aws-home", "mountPath": "/home/aws"},
                                    ],
                                }
                            ],
                            "volumes": [
                                {
                                    "name": "backups",
                                    "persistentVolumeClaim": {
                                        "claimName": "vocab-app-postgres-backup-pvc"
                                    },
                                },
                                {
                                    "name": "scripts",
                                    "configMap": {"name": "vocab-app-postgres-backup-script"},
                                },
                                {
                                    "name": "db-password",
                                    "secret": {"secretName": "vocab-app-postgres"},
                                },
                                {"name": "aws-home", "emptyDir": {}},
                            ],
                        },
                    },
                },
            },
        },
        "status": {"lastSuccessfulTime": "2026-01-19T02:03:00Z"},
    }


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env") or []}


@dataclass
class FakeKube:
    """BatchV1Api + AppsV1Api + CoreV1Api in one object."""

    cronjob: dict[str, Any] = field(default_factory=staging_cronjob)
    # Further CronJobs of the namespace (the drill's), by name.
    other_cronjobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    replicas: dict[str, int] = field(default_factory=lambda: {"vocab-app-api": 3})
    fail: dict[str, int] = field(default_factory=dict)  # "restore.sh:swap" -> exit code
    jobs: list[dict[str, Any]] = field(default_factory=list)
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    database: str = "vocab_app_staging"

    # -- batch ---------------------------------------------------------------------------------
    def read_namespaced_cron_job(self, name: str, namespace: str) -> dict[str, Any]:
        self.calls.append(("read_cronjob", namespace, name))
        for cronjob in (self.cronjob, *self.other_cronjobs.values()):
            if (cronjob["metadata"]["name"], cronjob["metadata"]["namespace"]) == (name, namespace):
                return copy.deepcopy(cronjob)
        raise NotFound(f"cronjob {namespace}/{name}")

    def patch_namespaced_cron_job(
        self, name: str, namespace: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        self.calls.append(("patch_cronjob", namespace, name, body))
        cronjob = self.read_namespaced_cron_job(name, namespace)
        self.cronjob["spec"].update(body["spec"])
        return cronjob

    def list_namespaced_job(self, namespace: str) -> dict[str, Any]:
        self.calls.append(("list_jobs", namespace))
        return {
            "items": copy.deepcopy(
                [j for j in self.jobs if j["metadata"]["namespace"] == namespace]
            )
        }

    def create_namespaced_job(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        job = copy.deepcopy(body)
        job.setdefault("metadata", {})["namespace"] = namespace
        job["status"] = {}
        self.jobs.append(job)
        self.calls.append(("create_job", namespace, job["metadata"]["name"], self.step_of(job)))
        return job

    def read_namespaced_job_status(self, name: str, namespace: str) -> dict[str, Any]:
        job = self._job(name, namespace)
        code = self.exit_code(job)
        return {"status": {"failed": 1} if code else {"succeeded": 1}}

    # -- core ----------------------------------------------------------------------------------
    def list_namespaced_pod(self, namespace: str, label_selector: str) -> dict[str, Any]:
        name = label_selector.split("=", 1)[1]
        job = self._job(name, namespace)
        code = self.exit_code(job)
        spec = job["spec"]["template"]["spec"]
        statuses = [
            {"name": c["name"], "state": {"terminated": {"exitCode": code}}}
            for c in spec["containers"]
        ]
        inits = [
            {"name": c["name"], "state": {"terminated": {"exitCode": 0}}}
            for c in spec.get("initContainers") or []
        ]
        return {
            "items": [
                {
                    "metadata": {"name": f"{name}-pod"},
                    "status": {
                        "phase": "Failed" if code else "Succeeded",
                        "initContainerStatuses": inits,
                        "containerStatuses": statuses,
                    },
                }
            ]
        }

    def read_namespaced_pod_log(self, name: str, namespace: str, container: str, **_: Any) -> str:
        job = self._job(name.removesuffix("-pod"), namespace)
        spec = job["spec"]["template"]["spec"]
        every = [*(spec.get("initContainers") or []), *spec["containers"]]
        target = next(c for c in every if c["name"] == container)
        return self.log_of(target, self.exit_code(job) if target in spec["containers"] else 0)

    # -- apps ----------------------------------------------------------------------------------
    def read_namespaced_deployment_scale(self, name: str, namespace: str) -> dict[str, Any]:
        if name not in self.replicas:
            raise NotFound(name)
        count = self.replicas[name]
        return {"spec": {"replicas": count}, "status": {"replicas": count}}

    def patch_namespaced_deployment_scale(
        self, name: str, namespace: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        count = int(body["spec"]["replicas"])
        self.calls.append(("scale", namespace, name, count))
        self.replicas[name] = count
        return body

    # -- canned step output --------------------------------------------------------------------
    def _job(self, name: str, namespace: str) -> dict[str, Any]:
        for job in self.jobs:
            if job["metadata"]["name"] == name and job["metadata"]["namespace"] == namespace:
                return job
        raise NotFound(name)

    @staticmethod
    def script_of(container: dict[str, Any]) -> str:
        return str(container["command"][-1]).rsplit("/", 1)[-1]

    def step_of(self, job: dict[str, Any]) -> str:
        container = job["spec"]["template"]["spec"]["containers"][-1]
        script = self.script_of(container)
        step = _env(container).get("RESTORE_STEP")
        return f"{script}:{step}" if step else script

    def exit_code(self, job: dict[str, Any]) -> int:
        return self.fail.get(self.step_of(job), 0)

    def log_of(self, container: dict[str, Any], code: int) -> str:
        script, env = self.script_of(container), _env(container)
        db = env.get("PGDATABASE", self.database)
        if code:
            return (
                f"2026-01-19T13:00:00Z ERROR: {script} broke on purpose — retry it\n"
                + json.dumps(
                    {
                        "event": script,
                        "status": "failed",
                        "exit_code": code,
                        "error": f"{script} broke on purpose — retry it",
                    }
                )
                + "\n"
            )
        if script == "backup.sh":
            return (
                "dumping...\n"
                + json.dumps(
                    {
                        "event": "backup",
                        "database": db,
                        "id": "20260119t130000z",
                        "bytes": 163577856,
                        "seconds": 41,
                        "status": "verified",
                        "path": f"/backups/{db}/20260119t130000z",
                    }
                )
                + "\n"
            )
        if script == "drill.sh":
            return (
                json.dumps(
                    {
                        "event": "drill",
                        "database": db,
                        "id": BACKUP_ID,
                        "tables": 4,
                        "rows": 5600,
                        "amcheck": "ok",
                        "seconds": 12,
                        "status": "passed",
                    }
                )
                + "\n"
            )
        if script == "upload.sh":
            return json.dumps({"event": "upload", "status": "ok", "sets_uploaded": 1}) + "\n"
        if script == "inventory.sh":
            return (
                "\n".join(
                    [
                        json.dumps(
                            {
                                "database": db,
                                "id": BACKUP_ID,
                                "kind": "set",
                                "bytes": 1000,
                                "status": "verified",
                                "finished_at": "2026-01-19T02:03:00Z",
                                "complete": True,
                            }
                        ),
                        # what status names: a database's sets on another database's volume
                        json.dumps(
                            {"event": "folder", "folder": "billing", "sets": 2, "bytes": 4096}
                        ),
                        json.dumps(
                            {
                                "event": "volume",
                                "size_bytes": 32 * 2**30,
                                "used_bytes": 8 * 2**30,
                                "avail_bytes": 24 * 2**30,
                            }
                        ),
                    ]
                )
                + "\n"
            )
        if script == "fetch.sh":
            return (
                json.dumps(
                    {
                        "event": "fetch",
                        "status": "verified",
                        "database": env.get("DATABASE", db),
                        "id": env.get("BACKUP_ID", BACKUP_ID),
                    }
                )
                + "\n"
            )
        if script == "verify.sh":
            return (
                json.dumps(
                    {
                        "event": "verify",
                        "database": db,
                        "id": env.get("BACKUP_ID"),
                        "status": "verified",
                        "toc_entries": 12,
                    }
                )
                + "\n"
            )
        if script == "restore.sh":
            backup_id = env.get("BACKUP_ID", BACKUP_ID)
            step = env.get("RESTORE_STEP", "all")
            side = env.get("TARGET_DATABASE") or f"{db}__restore_{backup_id}"
            kept = f"{db}__pre_restore_{backup_id}" if step == "swap" else None
            return (
                json.dumps(
                    {
                        "event": "restore",
                        "database": db,
                        "id": backup_id,
                        "step": step,
                        "status": "restored",
                        "into": side,
                        "side": side,
                        "kept": kept,
                    }
                )
                + "\n"
            )
        raise AssertionError(f"unexpected step {script}")

    # -- what the tests look at ----------------------------------------------------------------
    def created(self) -> list[dict[str, Any]]:
        return self.jobs

    def job_for(self, step: str) -> dict[str, Any]:
        return next(j for j in self.jobs if self.step_of(j) == step)
