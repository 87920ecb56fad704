"""The monthly restore drill: a CronJob whose pod (official `postgres` image) runs `drill.sh` from
the scripts ConfigMap. The drill starts a throwaway PostgreSQL server on an emptyDir inside its own
pod, restores the newest verified set from the backup volume into a scratch database there,
checks rows against the manifest and runs amcheck, then deletes it all. It never connects to the
live server, so it needs no database password and adds no load to production.

The Job's success or failure is the record: kube-state-metrics exports it and the PrometheusRule
of `infra.components.alerts` turns a failed drill into an alert.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi

from infra.components.scheduled_job import restricted_pod, scheduled_cronjob
from infra.config import Resources
from infra.pod_security import container_security, cpu_limit_env
from infra.validate import ConfigError

SCRIPTS_MOUNT = "/scripts"
BACKUP_DIR = "/backups"
DRILL_DIR = "/drill"
# The same high, numeric UID/GID as the backup pods (nothing in the image belongs to it; the
# script gives it a passwd entry through the image's nss_wrapper).


@dataclass(frozen=True)
class DrillCronJobArgs:
    namespace: str
    cronjob_name: str  # e.g. vocab-app-postgres-restore-drill
    database: str
    postgres_image: str
    pvc_name: pulumi.Input[str]
    configmap_name: pulumi.Input[str]
    service_account_name: pulumi.Input[str]
    resources: Resources
    schedule: str = "0 4 1 * *"  # monthly, after the nightly backup
    time_zone: str = "Etc/UTC"
    # Room for the restored copy: the scratch server's data directory lives here.
    scratch_size: str = "10Gi"
    active_deadline_seconds: int = 4 * 3600
    starting_deadline_seconds: int = 3600
    backoff_limit: int = 0  # a failed drill is a finding, not something to retry quietly
    successful_jobs_history_limit: int = 1
    failed_jobs_history_limit: int = 3
    ttl_seconds_after_finished: int = 40 * 86400  # keeps the log until the next monthly drill
    suspend: bool = False
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.cronjob_name or len(self.cronjob_name) > 52:
            raise ConfigError(
                f"drill CronJob name {self.cronjob_name!r} must be 1-52 characters",
                "shorten the release name (CronJob names leave 11 characters for the Job suffix)",
            )
        if self.active_deadline_seconds <= 0 or self.starting_deadline_seconds <= 0:
            raise ConfigError(
                f"drill CronJob {self.cronjob_name}: deadlines must be positive",
                "set positive activeDeadlineSeconds and startingDeadlineSeconds",
            )
        if "@sha256:" not in self.postgres_image:
            raise ConfigError(
                f"drill image {self.postgres_image!r} is not pinned by digest",
                "use postgres:<tag>@sha256:<digest> (pgbackup:images.postgres)",
            )


def drill_pod_spec(args: DrillCronJobArgs) -> dict[str, Any]:
    """The drill pod: one container, the volume, the scripts and two emptyDirs."""
    env: list[dict[str, Any]] = [
        {"name": "PGDATABASE", "value": args.database},
        {"name": "BACKUP_DIR", "value": BACKUP_DIR},
        {"name": "BACKUP_ID", "value": "latest"},
        {"name": "DRILL_DIR", "value": DRILL_DIR},
        {"name": "TMPDIR", "value": "/tmp"},  # noqa: S108 (an emptyDir of this pod)
        {"name": "HOME", "value": "/tmp"},  # noqa: S108
        cpu_limit_env("drill"),
    ]
    container = {
        "name": "drill",
        "image": args.postgres_image,
        "image_pull_policy": "Always",
        "command": ["bash", f"{SCRIPTS_MOUNT}/drill.sh"],
        "env": env,
        "resources": args.resources.as_k8s(),
        "security_context": container_security(),
        "volume_mounts": [
            # Read-write: restore.sh takes the volume's lock, so a drill and a backup never overlap.
            {"name": "backups", "mount_path": BACKUP_DIR},
            {"name": "scripts", "mount_path": SCRIPTS_MOUNT, "read_only": True},
            {"name": "drill", "mount_path": DRILL_DIR},
            {"name": "tmp", "mount_path": "/tmp"},  # noqa: S108
        ],
    }
    return restricted_pod(
        args.service_account_name,
        containers=[container],
        volumes=[
            {"name": "backups", "persistent_volume_claim": {"claim_name": args.pvc_name}},
            {"name": "scripts", "config_map": {"name": args.configmap_name, "default_mode": 0o555}},
            {"name": "drill", "empty_dir": {"size_limit": args.scratch_size}},
            {"name": "tmp", "empty_dir": {"size_limit": "1Gi"}},
        ],
    )


class DrillCronJob(pulumi.ComponentResource):
    cronjob_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: DrillCronJobArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("pgbackup:index:DrillCronJob", name, None, opts)
        labels = {**args.labels, "app": "postgres-restore-drill"}
        self.cronjob_name = scheduled_cronjob(
            name, args, labels, labels, drill_pod_spec(args), parent=self
        )
        self.register_outputs({"cronjob_name": self.cronjob_name})
