"""The stack's configuration as typed values: what `infra.config` parses the stack file into and
every component and command reads. Frozen: validated once, never changed after."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.validate import ConfigError


@dataclass(frozen=True)
class SecretRef:
    """A key of a Kubernetes Secret that already exists in the namespace."""

    name: str
    key: str


@dataclass(frozen=True)
class Resources:
    requests_cpu: str
    requests_memory: str
    limits_cpu: str
    limits_memory: str

    def as_k8s(self) -> dict[str, dict[str, str]]:
        return {
            "requests": {"cpu": self.requests_cpu, "memory": self.requests_memory},
            "limits": {"cpu": self.limits_cpu, "memory": self.limits_memory},
        }


@dataclass(frozen=True)
class PostgresConfig:
    host: str
    port: int
    user: str
    password_secret: SecretRef
    ssl_mode: str
    ssl_root_cert_secret: SecretRef | None


@dataclass(frozen=True)
class DatabaseConfig:
    """One database: one PVC, one scripts ConfigMap, one CronJob."""

    index: int
    key: str  # suffix of the object names for the second and later databases
    name: str
    schedule: str
    time_zone: str
    retention_days: int
    keep_min: int
    storage_size: str
    storage_class: str | None
    compression: str
    dump_jobs: int | None
    resources: Resources
    upload_resources: Resources
    starting_deadline_seconds: int
    active_deadline_seconds: int
    backoff_limit: int
    successful_jobs_history_limit: int
    failed_jobs_history_limit: int
    ttl_seconds_after_finished: int
    import_pvc: bool
    suspend: bool
    # Object names, computed once from the release and the database's position.
    cronjob_name: str
    pvc_name: str
    configmap_name: str
    drill_cronjob_name: str
    alert_rule_name: str


@dataclass(frozen=True)
class ObjectLockConfig:
    mode: str
    days: int


@dataclass(frozen=True)
class TransitionConfig:
    days: int
    storage_class: str


@dataclass(frozen=True)
class CredentialsConfig:
    mode: str  # "irsa" or "accessKey"
    oidc_provider_arn: str | None
    oidc_issuer: str | None
    writer_secret_name: str  # accessKey mode: the Kubernetes Secret holding the writer's key
    reader_secret_name: str


@dataclass(frozen=True)
class OffsiteConfig:
    bucket_name: str
    prefix: str
    retention_days: int
    noncurrent_days: int
    abort_multipart_days: int
    transition: TransitionConfig | None
    object_lock: ObjectLockConfig | None
    credentials: CredentialsConfig
    endpoint_url: str
    kms_deletion_window_days: int


@dataclass(frozen=True)
class CrossStackRead:
    stack: str
    bucket_name: str
    prefix: str
    kms_key_arn: str | None


@dataclass(frozen=True)
class DrillConfig:
    enabled: bool
    schedule: str
    time_zone: str


@dataclass(frozen=True)
class AlertsConfig:
    enabled: bool
    no_backup_hours: int
    pvc_usage_percent: int
    # Labels Prometheus selects rules by (its ruleSelector; kube-prometheus-stack's default wants
    # `release: <its release>`): without them the rule is declared but never loaded.
    rule_labels: tuple[tuple[str, str], ...]
    webhook_secret: SecretRef | None  # a Secret key holding the webhook URL; None: no routing


@dataclass(frozen=True)
class StackConfig:
    stack: str
    region: str
    namespace: str
    release: str
    postgres_image: str
    aws_cli_image: str
    postgres: PostgresConfig
    databases: tuple[DatabaseConfig, ...]
    app_deployments: tuple[str, ...]
    operator_group: str
    offsite: OffsiteConfig
    cross_stack_read: tuple[CrossStackRead, ...]
    drill: DrillConfig
    alerts: AlertsConfig
    kube_context: str | None
    # A kubeconfig for an explicit provider (disaster recovery into a new cluster). Under Pulumi a
    # secret Output; offline a placeholder string; None when the ambient kubeconfig is used.
    kubeconfig: Any
    backup_service_account: str
    restore_service_account: str
    restore_role: str

    def database(self, name: str) -> DatabaseConfig:
        for db in self.databases:
            if name in (db.name, db.key):
                return db
        known = ", ".join(db.name for db in self.databases)
        raise ConfigError(
            f"database {name!r} is not configured in stack {self.stack!r} (known: {known})",
            f"pass one of: {known}",
        )
