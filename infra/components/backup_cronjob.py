"""The backup CronJob: an initContainer (official `postgres` image) dumps one database onto the PVC,
then a container (official `amazon/aws-cli` image) copies complete sets offsite. Both run the
ConfigMap's scripts, non-root, with a read-only root filesystem and the password as a file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi

from infra.components.scheduled_job import restricted_pod, scheduled_cronjob
from infra.config import Resources, SecretRef
from infra.pod_security import container_security, cpu_limit_env
from infra.validate import ConfigError

SCRIPTS_MOUNT = "/scripts"
BACKUP_DIR = "/backups"
DB_SECRET_MOUNT = "/etc/pgbackup/db"  # noqa: S105 (a mount path)
SSL_MOUNT = "/etc/pgbackup/ssl"
AWS_MOUNT = "/etc/pgbackup/aws"
AWS_HOME = "/home/aws"


@dataclass(frozen=True)
class OffsiteTarget:
    bucket: pulumi.Input[str]
    prefix: str
    region: str
    kms_key_arn: pulumi.Input[str]
    endpoint_url: str = ""
    # accessKey mode: a Secret with a `credentials` file (AWS shared-credentials format).
    credentials_secret: str | None = None


@dataclass(frozen=True)
class BackupCronJobArgs:
    namespace: str
    cronjob_name: str
    database: str
    schedule: str
    time_zone: str
    postgres_image: str
    aws_cli_image: str
    pvc_name: pulumi.Input[str]
    configmap_name: pulumi.Input[str]
    service_account_name: pulumi.Input[str]
    pg_host: str
    pg_port: int
    pg_user: str
    pg_ssl_mode: str
    password_secret: SecretRef
    offsite: OffsiteTarget
    resources: Resources
    upload_resources: Resources
    ssl_root_cert_secret: SecretRef | None = None
    retention_days: int = 30
    keep_min: int = 7
    compression: str = "auto"
    dump_jobs: int | None = None
    starting_deadline_seconds: int = 3600
    active_deadline_seconds: int = 6 * 3600
    backoff_limit: int = 1
    successful_jobs_history_limit: int = 3
    failed_jobs_history_limit: int = 3
    ttl_seconds_after_finished: int = 8 * 86400
    suspend: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    pod_labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.retention_days < 1 or self.keep_min < 1:
            raise ConfigError(
                f"CronJob {self.cronjob_name}: retention_days and keep_min must be >= 1",
                "keep at least one day and one verified set",
            )
        if self.active_deadline_seconds <= 0 or self.starting_deadline_seconds <= 0:
            raise ConfigError(
                f"CronJob {self.cronjob_name}: deadlines must be positive",
                "set startingDeadlineSeconds and activeDeadlineSeconds",
            )


def _env(values: dict[str, str]) -> list[dict[str, Any]]:
    return [{"name": k, "value": v} for k, v in values.items()]


def _backup_container(args: BackupCronJobArgs) -> dict[str, Any]:
    env = _env(
        {
            "PGHOST": args.pg_host,
            "PGPORT": str(args.pg_port),
            "PGUSER": args.pg_user,
            "PGDATABASE": args.database,
            "PGSSLMODE": args.pg_ssl_mode,
            "PGPASSWORD_FILE": f"{DB_SECRET_MOUNT}/password",
            "BACKUP_DIR": BACKUP_DIR,
            "RETENTION_DAYS": str(args.retention_days),
            "KEEP_MIN": str(args.keep_min),
            # This Job's upload container copies every set offsite: retention keeps those it
            # has not marked yet (a bucket unreachable for longer than the retention loses none).
            "RETAIN_UNTIL_OFFSITE": "1",
            "COMPRESSION": args.compression,
            "TMPDIR": "/tmp",  # noqa: S108 (an emptyDir of this pod)
            "HOME": "/tmp",  # noqa: S108
        }
    )
    if args.ssl_root_cert_secret is not None:
        env += _env({"PGSSLROOTCERT": f"{SSL_MOUNT}/root.crt"})
    if args.dump_jobs is not None:
        env += _env({"DUMP_JOBS": str(args.dump_jobs)})
    # Parallelism follows the CPU the container may use, not the node's nproc.
    env.append(cpu_limit_env("backup"))
    mounts = [
        {"name": "backups", "mount_path": BACKUP_DIR},
        {"name": "scripts", "mount_path": SCRIPTS_MOUNT, "read_only": True},
        {"name": "db-password", "mount_path": DB_SECRET_MOUNT, "read_only": True},
        {"name": "tmp", "mount_path": "/tmp"},  # noqa: S108
    ]
    if args.ssl_root_cert_secret is not None:
        mounts.append({"name": "db-ssl", "mount_path": SSL_MOUNT, "read_only": True})
    return {
        "name": "backup",
        "image": args.postgres_image,
        "image_pull_policy": "Always",
        "command": ["bash", f"{SCRIPTS_MOUNT}/backup.sh"],
        "env": env,
        "resources": args.resources.as_k8s(),
        "security_context": container_security(),
        "volume_mounts": mounts,
    }


def _upload_container(args: BackupCronJobArgs) -> dict[str, Any]:
    offsite = args.offsite
    env = _env(
        {
            "BACKUP_DIR": BACKUP_DIR,
            "PGDATABASE": args.database,
            "S3_PREFIX": offsite.prefix,
            "S3_ENDPOINT_URL": offsite.endpoint_url,
            "S3_SSE": "aws:kms",
            "AWS_REGION": offsite.region,
            "AWS_DEFAULT_REGION": offsite.region,
            "HOME": AWS_HOME,
            "TMPDIR": "/tmp",  # noqa: S108
        }
    )
    env.append({"name": "S3_BUCKET", "value": offsite.bucket})
    env.append({"name": "S3_KMS_KEY_ID", "value": offsite.kms_key_arn})
    mounts = [
        {"name": "backups", "mount_path": BACKUP_DIR},
        {"name": "scripts", "mount_path": SCRIPTS_MOUNT, "read_only": True},
        {"name": "tmp", "mount_path": "/tmp"},  # noqa: S108
        {"name": "aws-home", "mount_path": AWS_HOME},
    ]
    if offsite.credentials_secret:
        env += _env({"AWS_SHARED_CREDENTIALS_FILE": f"{AWS_MOUNT}/credentials"})
        mounts.append({"name": "aws-credentials", "mount_path": AWS_MOUNT, "read_only": True})
    return {
        "name": "upload",
        "image": args.aws_cli_image,
        "image_pull_policy": "Always",
        # The image's ENTRYPOINT is `aws`; run the step with bash instead.
        "command": ["bash", f"{SCRIPTS_MOUNT}/upload.sh"],
        "env": env,
        "resources": args.upload_resources.as_k8s(),
        "security_context": container_security(),
        "volume_mounts": mounts,
    }


def _volumes(args: BackupCronJobArgs) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [
        {"name": "backups", "persistent_volume_claim": {"claim_name": args.pvc_name}},
        {"name": "scripts", "config_map": {"name": args.configmap_name, "default_mode": 0o555}},
        {
            "name": "db-password",
            "secret": {
                "secret_name": args.password_secret.name,
                "items": [{"key": args.password_secret.key, "path": "password"}],
                "default_mode": 0o440,
            },
        },
        {"name": "tmp", "empty_dir": {"size_limit": "1Gi"}},
        {"name": "aws-home", "empty_dir": {"size_limit": "64Mi"}},
    ]
    if args.ssl_root_cert_secret is not None:
        volumes.append(
            {
                "name": "db-ssl",
                "secret": {
                    "secret_name": args.ssl_root_cert_secret.name,
                    "items": [{"key": args.ssl_root_cert_secret.key, "path": "root.crt"}],
                    "default_mode": 0o440,
                },
            }
        )
    if args.offsite.credentials_secret:
        volumes.append(
            {
                "name": "aws-credentials",
                "secret": {
                    "secret_name": args.offsite.credentials_secret,
                    "items": [{"key": "credentials", "path": "credentials"}],
                    "default_mode": 0o440,
                },
            }
        )
    return volumes


def job_pod_spec(args: BackupCronJobArgs) -> dict[str, Any]:
    """The pod of one backup run (also what a manual Job from this CronJob gets)."""
    return restricted_pod(
        args.service_account_name,
        containers=[_upload_container(args)],
        volumes=_volumes(args),
        init_containers=[_backup_container(args)],
    )


class BackupCronJob(pulumi.ComponentResource):
    cronjob_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: BackupCronJobArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("pgbackup:index:BackupCronJob", name, None, opts)
        pod_labels = {**args.labels, **args.pod_labels}
        self.cronjob_name = scheduled_cronjob(
            name, args, args.labels, pod_labels, job_pod_spec(args), parent=self
        )
        self.register_outputs({"cronjob_name": self.cronjob_name})
