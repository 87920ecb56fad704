"""The alert rules evaluated for real by Prometheus' own rule engine (`promtool test rules`), on
series shaped as kube-state-metrics and the kubelet export them (scraped every minute): when each
alert fires, and when it must stop firing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.components.alerts import AlertsArgs, rules

NS = "vocab-app-production"
BACKUP = "vocab-app-postgres-backup"
DRILL = "vocab-app-postgres-restore-drill"
PVC = "vocab-app-postgres-backup-pvc"
ARGS = AlertsArgs(NS, "rules", "vocab_app", BACKUP, PVC, drill_cronjob_name=DRILL)
RULES = {rule["alert"]: rule for rule in rules(ARGS)}

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")


def series(metric: str, labels: dict[str, str], values: str) -> dict[str, str]:
    text = ", ".join(f'{key}="{value}"' for key, value in labels.items())
    return {"series": f"{metric}{{{text}}}", "values": values}


def job(name: str, **extra: str) -> dict[str, str]:
    return {"namespace": NS, "job_name": name, **extra}


def fires(alert: str, at: str) -> dict[str, Any]:
    rule = RULES[alert]
    # Every alert carries its namespace (AlertmanagerConfig routes by it), whatever its series.
    assert rule["labels"]["namespace"] == NS
    expected = {"exp_labels": rule["labels"], "exp_annotations": rule["annotations"]}
    return {"alertname": alert, "eval_time": at, "exp_alerts": [expected]}


def quiet(alert: str, at: str) -> dict[str, Any]:
    return {"alertname": alert, "eval_time": at, "exp_alerts": []}


def failed_then_succeeded(cronjob: str, alert: str) -> dict[str, Any]:
    """A run fails at minute 100 (kept, and counted, until its TTL); an older success does not
    hide it; a later run succeeds at minute 205 and the alert resolves."""
    return {
        "name": f"{alert}: on a failure, off at the next success",
        "interval": "1m",
        "input_series": [
            series("kube_job_created", job(f"{cronjob}-1"), "0x400"),
            series("kube_job_status_completion_time", job(f"{cronjob}-1"), "60x400"),
            series("kube_job_created", job(f"{cronjob}-100"), "_x99 6000x300"),
            series(
                "kube_job_status_failed",
                job(f"{cronjob}-100", reason="BackoffLimitExceeded"),
                "_x99 1x300",
            ),
            series("kube_job_created", job(f"{cronjob}-manual-200"), "_x199 12000x200"),
            series(
                "kube_job_status_completion_time", job(f"{cronjob}-manual-200"), "_x204 12300x195"
            ),
            # Not a run of this CronJob: an inventory Job the CLI made, failed.
            series("kube_job_created", job(f"{cronjob}-inventory-300"), "_x299 18000x100"),
            series("kube_job_status_failed", job(f"{cronjob}-inventory-300"), "_x299 1x100"),
        ],
        "alert_rule_test": [
            quiet(alert, "90m"),
            fires(alert, "150m"),
            quiet(alert, "210m"),
            quiet(alert, "320m"),
        ],
    }


def promtool_passes(tmp_path: Path, tests: list[dict[str, Any]]) -> None:
    """Run the test groups against the shipped rules; fail with promtool's own report."""
    groups = {"groups": [{"name": "pgbackup", "rules": list(RULES.values())}]}
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(groups))
    (tmp_path / "tests.yml").write_text(
        yaml.safe_dump({"rule_files": ["rules.yml"], "tests": tests})
    )
    run = subprocess.run(
        ["promtool", "test", "rules", "tests.yml"],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_alert_rules_fire_and_resolve_as_documented(tmp_path: Path) -> None:
    tests = [
        failed_then_succeeded(BACKUP, "PostgresBackupJobFailed"),
        failed_then_succeeded(DRILL, "PostgresRestoreDrillFailed"),
        {
            "name": "no verified backup for 26 h",
            "interval": "1m",
            "input_series": [
                series("kube_job_status_completion_time", job(f"{BACKUP}-1"), "0x1700"),
            ],
            "alert_rule_test": [
                quiet("PostgresNoVerifiedBackup", "25h"),
                fires("PostgresNoVerifiedBackup", "26h30m"),
            ],
        },
        {
            "name": "never a verified backup since the CronJob was created",
            "interval": "1m",
            "input_series": [
                series("kube_cronjob_created", {"namespace": NS, "cronjob": BACKUP}, "0x1700"),
            ],
            "alert_rule_test": [
                quiet("PostgresNoVerifiedBackup", "25h"),
                fires("PostgresNoVerifiedBackup", "26h30m"),
            ],
        },
        {
            # The kubelet reports the volume only while the nightly Job mounts it (20 minutes).
            "name": "the volume is seen only while a backup runs",
            "interval": "1m",
            "input_series": [
                series(
                    "kubelet_volume_stats_used_bytes",
                    {"namespace": NS, "persistentvolumeclaim": PVC},
                    "85x20 _x1700",
                ),
                series(
                    "kubelet_volume_stats_capacity_bytes",
                    {"namespace": NS, "persistentvolumeclaim": PVC},
                    "100x20 _x1700",
                ),
                series(
                    "kubelet_volume_stats_used_bytes",
                    {"namespace": NS, "persistentvolumeclaim": "another-pvc"},
                    "99x1700",
                ),
                series(
                    "kubelet_volume_stats_capacity_bytes",
                    {"namespace": NS, "persistentvolumeclaim": "another-pvc"},
                    "100x1700",
                ),
            ],
            "alert_rule_test": [
                fires("PostgresBackupVolumeFilling", "10m"),
                fires("PostgresBackupVolumeFilling", "12h"),
                quiet("PostgresBackupVolumeFilling", "27h"),
            ],
        },
    ]
    promtool_passes(tmp_path, tests)


def test_a_volume_below_the_threshold_raises_nothing(tmp_path: Path) -> None:
    volume = {"namespace": NS, "persistentvolumeclaim": PVC}
    tests = [
        {
            "interval": "1m",
            "input_series": [
                series("kubelet_volume_stats_used_bytes", volume, "79x20 _x60"),
                series("kubelet_volume_stats_capacity_bytes", volume, "100x20 _x60"),
            ],
            "alert_rule_test": [quiet("PostgresBackupVolumeFilling", "1h")],
        }
    ]
    promtool_passes(tmp_path, tests)
