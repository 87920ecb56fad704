"""Alerts for one database's backups, as a PrometheusRule (needs the Prometheus Operator):
- a backup Job failed,
- no verified backup for `no_backup_hours` (a backup Job succeeds only once its set is verified
  and offsite, and Kubernetes sets a Job's completion time only on success),
- a restore drill failed,
- the backup volume is fuller than `pvc_usage_percent`.
They read kube-state-metrics (`kube_job_*`) and the kubelet's volume stats
(`kubelet_volume_stats_*`). Optionally an AlertmanagerConfig sends these alerts to a webhook whose
URL is kept in a Secret (no image, no token in the cluster's config).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra.config import SecretRef
from infra.validate import ConfigError


@dataclass(frozen=True)
class AlertsArgs:
    namespace: str
    rule_name: str  # e.g. vocab-app-postgres-backup-alerts
    database: str
    backup_cronjob_name: str
    pvc_name: str
    drill_cronjob_name: str | None = None  # None: no drill alert
    no_backup_hours: int = 26
    pvc_usage_percent: int = 80
    # Labels Prometheus selects rules by (its ruleSelector), e.g. {release: kube-prometheus-stack}.
    rule_labels: dict[str, str] = field(default_factory=dict)
    webhook_secret: SecretRef | None = None  # a Secret key holding the webhook URL

    def __post_init__(self) -> None:
        if self.no_backup_hours < 1:
            raise ConfigError(
                f"alerts for {self.database}: noBackupHours must be at least 1",
                "set pgbackup:alerts.noBackupHours to e.g. 26 (a daily backup plus slack)",
            )
        if not 1 <= self.pvc_usage_percent <= 100:
            raise ConfigError(
                f"alerts for {self.database}: pvcUsagePercent must be 1-100",
                "set pgbackup:alerts.pvcUsagePercent to e.g. 80",
            )


def _jobs_of(cronjob: str) -> str:
    """A job_name regex for the runs of one CronJob: scheduled (`<cronjob>-<minutes>`) and made by
    hand from it (`<cronjob>-manual-<time>`, what `pgbackup backup`/`drill` create). Not the CLI's
    other Jobs (`-inventory-`, `-verify-`, `-restore-`…: a finished listing is no backup) and not
    a further database's CronJob whose name extends this one (`<cronjob>-analytics-<minutes>`)."""
    # Kubernetes names hold [a-z0-9.-]; only the dot is special in a regex, and a PromQL string
    # needs its backslash doubled.
    return cronjob.replace(".", "\\\\.") + "-(manual-)?[0-9]+"


def _failed_since_last_success(jobs: str) -> str:
    """Whether the newest failed run of these Jobs started after the last one that succeeded. A
    failed Job is kept (and counted by kube-state-metrics) until its TTL; a later success must
    resolve the alert, or it fires for days after the cause is gone and gets silenced."""
    failed_started = (
        f"kube_job_created{{{jobs}}} and on(namespace, job_name) "
        f"(kube_job_status_failed{{{jobs}}} > 0)"
    )
    return (
        f"max({failed_started}) > "
        f"(max(kube_job_status_completion_time{{{jobs}}}) or on() vector(0))"
    )


def rules(args: AlertsArgs) -> list[dict[str, Any]]:
    """The alerting rules (plain data: also what tests and the policy pack read)."""
    ns = args.namespace
    backup_jobs = f'namespace="{ns}", job_name=~"{_jobs_of(args.backup_cronjob_name)}"'
    hours = args.no_backup_hours * 3600
    volume = f'namespace="{ns}", persistentvolumeclaim="{args.pvc_name}"'
    window = f"{args.no_backup_hours}h"
    # `namespace`: the Prometheus Operator routes an AlertmanagerConfig's alerts by it, and every
    # expression here aggregates it away.
    labels = {
        "severity": "critical",
        "database": args.database,
        "namespace": ns,
        "pgbackup": "true",
    }
    result: list[dict[str, Any]] = [
        {
            "alert": "PostgresBackupJobFailed",
            "expr": _failed_since_last_success(backup_jobs),
            "labels": {**labels, "severity": "warning"},
            "annotations": {
                "summary": f"A backup Job of {args.database} failed",
                "description": (
                    f"kubectl logs -n {ns} -l app=postgres-backup --all-containers; "
                    "then `pgbackup status` (README runbook: backup failed)"
                ),
            },
        },
        {
            "alert": "PostgresNoVerifiedBackup",
            "expr": (
                f"(time() - max(kube_job_status_completion_time{{{backup_jobs}}}) > {hours})"
                f" or (absent(kube_job_status_completion_time{{{backup_jobs}}})"
                # Without any successful Job yet, count from when the CronJob was created.
                f' and on() (time() - max(kube_cronjob_created{{namespace="{ns}", '
                f'cronjob="{args.backup_cronjob_name}"}}) > {hours}))'
            ),
            "for": "10m",
            "labels": labels,
            "annotations": {
                "summary": f"No verified backup of {args.database} for {args.no_backup_hours} h",
                "description": (
                    f"RPO at risk. kubectl get cronjob {args.backup_cronjob_name} -n {ns}; "
                    "`pgbackup backup` to take one now (README runbook: job not running)"
                ),
            },
        },
        {
            "alert": "PostgresBackupVolumeFilling",
            # The kubelet reports a volume only while a pod mounts it, i.e. while a backup (or
            # another step) runs: the peak of the last backup window, not the current value. The
            # peak is the right measure too: it is reached before retention frees the oldest set.
            "expr": (
                f"100 * max(max_over_time(kubelet_volume_stats_used_bytes{{{volume}}}[{window}]))"
                f" / max(max_over_time(kubelet_volume_stats_capacity_bytes{{{volume}}}[{window}]))"
                f" > {args.pvc_usage_percent}"
            ),
            "labels": {**labels, "severity": "warning"},
            "annotations": {
                "summary": (
                    f"Backup volume {args.pvc_name} is over {args.pvc_usage_percent} % full"
                ),
                "description": (
                    "Lower retentionDays/keepMin or grow storageSize, then `pulumi up` "
                    "(README runbook: disk full)"
                ),
            },
        },
    ]
    if args.drill_cronjob_name:
        drill_jobs = f'namespace="{ns}", job_name=~"{_jobs_of(args.drill_cronjob_name)}"'
        result.append(
            {
                "alert": "PostgresRestoreDrillFailed",
                "expr": _failed_since_last_success(drill_jobs),
                "labels": labels,
                "annotations": {
                    "summary": f"The restore drill of {args.database} failed",
                    "description": (
                        f"kubectl logs -n {ns} -l app=postgres-restore-drill; a CORRUPT line "
                        "names the set: rely on another one and find out why"
                    ),
                },
            }
        )
    return result


class BackupAlerts(pulumi.ComponentResource):
    rule_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: AlertsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("pgbackup:index:BackupAlerts", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        rule = k8s.apiextensions.CustomResource(
            f"{name}-rule",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata={
                "name": args.rule_name,
                "namespace": args.namespace,
                "labels": args.rule_labels,
            },
            spec={"groups": [{"name": f"pgbackup-{args.database}", "rules": rules(args)}]},
            opts=child,
        )
        if args.webhook_secret is not None:
            k8s.apiextensions.CustomResource(
                f"{name}-webhook",
                api_version="monitoring.coreos.com/v1alpha1",
                kind="AlertmanagerConfig",
                metadata={
                    "name": f"{args.rule_name}-webhook",
                    "namespace": args.namespace,
                    "labels": args.rule_labels,
                },
                spec={
                    "route": {
                        "receiver": "pgbackup-webhook",
                        "matchers": [{"name": "pgbackup", "value": "true", "matchType": "="}],
                        "groupBy": ["alertname", "database"],
                    },
                    "receivers": [
                        {
                            "name": "pgbackup-webhook",
                            "webhookConfigs": [
                                {
                                    "urlSecret": {
                                        "name": args.webhook_secret.name,
                                        "key": args.webhook_secret.key,
                                    },
                                    "sendResolved": True,
                                }
                            ],
                        }
                    ],
                },
                opts=child,
            )
        self.rule_name = rule.metadata.apply(lambda m: _name_of(m) or args.rule_name)
        self.register_outputs({"rule_name": self.rule_name})


def _name_of(metadata: Any) -> str | None:
    """metadata.name, whether the provider hands back a dict (mocks) or an ObjectMeta."""
    if isinstance(metadata, dict):
        return metadata.get("name")
    return getattr(metadata, "name", None)
