"""The drill CronJob and the alerts components, declared under Pulumi's mock runtime (the real
components, the engine replaced) and checked against the Kubernetes schema."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

import infra.program
from infra.components.alerts import AlertsArgs, BackupAlerts
from infra.components.drill_cronjob import DrillCronJob, DrillCronJobArgs
from infra.config import Resources, SecretRef
from infra.mock_run import DeclaredResource, run_program
from infra.render import kubernetes_manifest

PINNED = "postgres:16.4@sha256:" + "0" * 64
K8S_VERSION = "1.30"


def _declare(_: Any) -> None:
    DrillCronJob(
        "drill",
        DrillCronJobArgs(
            namespace="vocab-app-staging",
            cronjob_name="vocab-app-postgres-restore-drill",
            database="vocab_app_staging",
            postgres_image=PINNED,
            pvc_name="vocab-app-postgres-backup-pvc",
            configmap_name="vocab-app-postgres-backup-script",
            service_account_name="vocab-app-postgres-backup",
            resources=Resources("250m", "512Mi", "2", "2Gi"),
        ),
    )
    BackupAlerts(
        "alerts",
        AlertsArgs(
            namespace="vocab-app-staging",
            rule_name="vocab-app-postgres-backup-alerts",
            database="vocab_app_staging",
            backup_cronjob_name="vocab-app-postgres-backup",
            pvc_name="vocab-app-postgres-backup-pvc",
            drill_cronjob_name="vocab-app-postgres-restore-drill",
            rule_labels={"release": "kube-prometheus-stack"},
            webhook_secret=SecretRef("pgbackup-alert-webhook", "url"),
        ),
    )


@pytest.fixture(scope="module")
def declared() -> list[DeclaredResource]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(infra.program, "declare", _declare)
        return [r for r in run_program("staging").resources if r.custom]


def _kind(resources: list[DeclaredResource], kind: str) -> dict[str, Any]:
    found = [kubernetes_manifest(r) for r in resources if r.inputs.get("kind") == kind]
    assert len(found) == 1, kind
    return found[0]


def test_the_drill_cronjob_is_monthly_restricted_and_never_sees_the_database_password(
    declared: list[DeclaredResource],
) -> None:
    cronjob = _kind(declared, "CronJob")
    kubernetes_validate.validate(cronjob, K8S_VERSION, strict=True)
    assert cronjob["spec"]["schedule"] == "0 4 1 * *"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] >= 10000
    (container,) = pod["containers"]
    assert container["command"] == ["bash", "/scripts/drill.sh"]
    assert container["image"] == PINNED
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes["drill"]  # the throwaway server's data: gone with the pod
    assert not any("secret" in v for v in volumes.values())
    env = {e["name"] for e in container["env"]}
    assert not {"PGHOST", "PGPASSWORD_FILE", "PGPASSFILE"} & env


def test_the_prometheus_rule_covers_failed_backups_stale_backups_drills_and_a_full_volume(
    declared: list[DeclaredResource],
) -> None:
    rule = _kind(declared, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"] == {"release": "kube-prometheus-stack"}
    alerts = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    assert set(alerts) == {
        "PostgresBackupJobFailed",
        "PostgresNoVerifiedBackup",
        "PostgresRestoreDrillFailed",
        "PostgresBackupVolumeFilling",
    }
    assert "kube_job_status_failed" in alerts["PostgresBackupJobFailed"]["expr"]
    assert "vocab-app-postgres-backup-" in alerts["PostgresBackupJobFailed"]["expr"]
    assert str(26 * 3600) in alerts["PostgresNoVerifiedBackup"]["expr"]
    assert "vocab-app-postgres-restore-drill" in alerts["PostgresRestoreDrillFailed"]["expr"]
    full = alerts["PostgresBackupVolumeFilling"]["expr"]
    assert "kubelet_volume_stats_used_bytes" in full and full.endswith("> 80")


def test_the_webhook_url_stays_in_its_secret(declared: list[DeclaredResource]) -> None:
    config = _kind(declared, "AlertmanagerConfig")
    (receiver,) = config["spec"]["receivers"]
    (webhook,) = receiver["webhookConfigs"]
    assert webhook["urlSecret"] == {"name": "pgbackup-alert-webhook", "key": "url"}
    assert "url" not in webhook


def test_weak_alert_settings_are_refused() -> None:
    from infra.validate import ConfigError

    with pytest.raises(ConfigError):
        AlertsArgs("ns", "r", "db", "cj", "pvc", pvc_usage_percent=120)


def test_backup_alerts_count_only_runs_of_the_backup_cronjob() -> None:
    """A finished inventory, verify or restore Job is no backup, nor is another database's run."""
    import re

    from infra.components.alerts import _jobs_of

    pattern = re.compile(_jobs_of("vocab-app-postgres-backup"))
    counted = ["vocab-app-postgres-backup-29412345", "vocab-app-postgres-backup-manual-20261125"]
    ignored = [
        "vocab-app-postgres-backup-inventory-20261125204500",
        "vocab-app-postgres-backup-verify-20261125204500",
        "vocab-app-postgres-backup-fetch-20261125204500",
        "vocab-app-postgres-backup-restore-20261125204500",
        "vocab-app-postgres-backup-swap-20261125204500",
        "vocab-app-postgres-backup-analytics-29412345",
    ]
    assert [n for n in counted if pattern.fullmatch(n)] == counted
    assert [n for n in ignored if pattern.fullmatch(n)] == []
