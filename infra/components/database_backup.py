"""Everything one database needs in the cluster: its PVC, its scripts ConfigMap, its CronJob, and,
when the stack enables them, a monthly restore-drill CronJob and its alert rules."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi

from infra.components.alerts import AlertsArgs, BackupAlerts
from infra.components.backup_cronjob import BackupCronJob, BackupCronJobArgs, OffsiteTarget
from infra.components.backup_volume import BackupVolume, BackupVolumeArgs
from infra.components.drill_cronjob import DrillCronJob, DrillCronJobArgs
from infra.components.scripts_configmap import ScriptsConfigMap, ScriptsConfigMapArgs
from infra.config import DatabaseConfig, StackConfig
from infra.names import JOB_LABEL
from infra.validate import ConfigError

REQUIRED_SCRIPTS = ("backup.sh", "upload.sh")


@dataclass(frozen=True)
class DatabaseBackupArgs:
    stack: StackConfig
    database: DatabaseConfig
    scripts: Mapping[str, str]
    service_account_name: pulumi.Input[str]
    # The drill's pod: the restore ServiceAccount (the bucket's reader), never the writer's
    # identity: it only reads the volume (and, with --from offsite, the bucket).
    drill_service_account_name: pulumi.Input[str]
    offsite: OffsiteTarget
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [s for s in REQUIRED_SCRIPTS if s not in self.scripts]
        if missing:
            raise ConfigError(
                f"jobs/scripts/ lacks {', '.join(missing)} (the CronJob runs them)",
                "restore the scripts folder from the repository",
            )


class DatabaseBackup(pulumi.ComponentResource):
    cronjob_name: pulumi.Output[str]
    pvc_name: pulumi.Output[str]
    configmap_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: DatabaseBackupArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("pgbackup:index:DatabaseBackup", name, None, opts)
        stack, db = args.stack, args.database
        labels = {**args.labels, "pgbackup.io/database": db.name[:63]}
        child = pulumi.ResourceOptions(parent=self)
        volume = BackupVolume(
            f"{name}-volume",
            BackupVolumeArgs(
                namespace=stack.namespace,
                pvc_name=db.pvc_name,
                size=db.storage_size,
                storage_class=db.storage_class,
                labels=labels,
                import_existing=db.import_pvc,
            ),
            opts=child,
        )
        scripts = ScriptsConfigMap(
            f"{name}-scripts",
            ScriptsConfigMapArgs(
                namespace=stack.namespace,
                configmap_name=db.configmap_name,
                files=args.scripts,
                labels=labels,
            ),
            opts=child,
        )
        pg = stack.postgres
        cronjob = BackupCronJob(
            f"{name}-cronjob",
            BackupCronJobArgs(
                namespace=stack.namespace,
                cronjob_name=db.cronjob_name,
                database=db.name,
                schedule=db.schedule,
                time_zone=db.time_zone,
                postgres_image=stack.postgres_image,
                aws_cli_image=stack.aws_cli_image,
                pvc_name=volume.pvc_name,
                configmap_name=scripts.configmap_name,
                service_account_name=args.service_account_name,
                pg_host=pg.host,
                pg_port=pg.port,
                pg_user=pg.user,
                pg_ssl_mode=pg.ssl_mode,
                password_secret=pg.password_secret,
                ssl_root_cert_secret=pg.ssl_root_cert_secret,
                offsite=args.offsite,
                resources=db.resources,
                upload_resources=db.upload_resources,
                retention_days=db.retention_days,
                keep_min=db.keep_min,
                compression=db.compression,
                dump_jobs=db.dump_jobs,
                starting_deadline_seconds=db.starting_deadline_seconds,
                active_deadline_seconds=db.active_deadline_seconds,
                backoff_limit=db.backoff_limit,
                successful_jobs_history_limit=db.successful_jobs_history_limit,
                failed_jobs_history_limit=db.failed_jobs_history_limit,
                ttl_seconds_after_finished=db.ttl_seconds_after_finished,
                suspend=db.suspend,
                labels=labels,
                pod_labels=dict(JOB_LABEL),
            ),
            opts=child,
        )
        if stack.drill.enabled:
            DrillCronJob(
                f"{name}-drill",
                DrillCronJobArgs(
                    namespace=stack.namespace,
                    cronjob_name=db.drill_cronjob_name,
                    database=db.name,
                    postgres_image=stack.postgres_image,
                    pvc_name=volume.pvc_name,
                    configmap_name=scripts.configmap_name,
                    service_account_name=args.drill_service_account_name,
                    resources=db.resources,
                    schedule=stack.drill.schedule,
                    time_zone=stack.drill.time_zone,
                    labels=labels,
                ),
                opts=child,
            )
        if stack.alerts.enabled:
            BackupAlerts(
                f"{name}-alerts",
                AlertsArgs(
                    namespace=stack.namespace,
                    rule_name=db.alert_rule_name,
                    database=db.name,
                    backup_cronjob_name=db.cronjob_name,
                    pvc_name=db.pvc_name,
                    drill_cronjob_name=db.drill_cronjob_name if stack.drill.enabled else None,
                    no_backup_hours=stack.alerts.no_backup_hours,
                    pvc_usage_percent=stack.alerts.pvc_usage_percent,
                    rule_labels={**labels, **dict(stack.alerts.rule_labels)},
                    webhook_secret=stack.alerts.webhook_secret,
                ),
                opts=child,
            )
        self.cronjob_name = cronjob.cronjob_name
        self.pvc_name = volume.pvc_name
        self.configmap_name = scripts.configmap_name
        self.register_outputs(
            {
                "cronjob_name": self.cronjob_name,
                "pvc_name": self.pvc_name,
                "configmap_name": self.configmap_name,
            }
        )
