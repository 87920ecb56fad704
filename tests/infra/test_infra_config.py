"""Stack config: the shipped stacks load; every bad value is refused with the key and a fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.config import (
    TOP_LEVEL_DEFAULTS,
    ConfigError,
    config_from_raw,
    load_stack_config,
)
from infra.mock_run import run_program, stack_config_values
from jobs.errors import ExitCode

REPO = Path(__file__).resolve().parents[2]


def load(stack: str = "staging", **overrides: Any) -> Any:
    return config_from_raw(stack_config_values(stack, overrides), stack)


def test_shipped_stacks_describe_the_guides_app() -> None:
    for stack in ("staging", "production"):
        cfg = load_stack_config(stack)
        assert cfg.namespace == f"vocab-app-{stack}"
        assert cfg.release == "vocab-app"
        (db,) = cfg.databases
        assert db.name == f"vocab_app_{stack}"
        assert (db.schedule, db.time_zone) == ("0 2 * * *", "Etc/UTC")
        assert (db.retention_days, db.storage_size) == (30, "30Gi")
        # The guide's names, so its runbook commands keep working.
        assert db.cronjob_name == "vocab-app-postgres-backup"
        assert db.pvc_name == "vocab-app-postgres-backup-pvc"
        assert db.configmap_name == "vocab-app-postgres-backup-script"
        assert cfg.offsite.bucket_name == f"vocab-app-{stack}-postgres-backups"
        assert cfg.app_deployments == ("vocab-app-api",)
    assert load_stack_config("production").offsite.object_lock is not None
    assert load_stack_config("staging").offsite.object_lock is None


def test_second_database_adds_its_key_as_suffix() -> None:
    cfg = load(
        databases=[
            {"name": "vocab_app_staging"},
            {"name": "analytics", "schedule": "30 3 * * *", "storageSize": "50Gi"},
        ]
    )
    first, second = cfg.databases
    assert first.cronjob_name == "vocab-app-postgres-backup"
    assert second.cronjob_name == "vocab-app-postgres-backup-analytics"
    assert second.pvc_name == "vocab-app-postgres-backup-pvc-analytics"
    assert second.configmap_name == "vocab-app-postgres-backup-script-analytics"
    assert (second.schedule, second.storage_size) == ("30 3 * * *", "50Gi")
    assert cfg.database("analytics") is second


def test_project_defaults_match_the_parser(tmp_path: Path) -> None:
    project = yaml.safe_load((REPO / "Pulumi.yaml").read_text())
    declared = {k: v["default"] for k, v in project["config"].items() if "default" in v}
    assert declared == TOP_LEVEL_DEFAULTS
    for key, spec in project["config"].items():
        assert spec.get("type") and spec.get("description"), f"{key} lacks type or description"


def test_secure_values_are_placeholders_offline(tmp_path: Path) -> None:
    for name in ("Pulumi.yaml", "Pulumi.staging.yaml"):
        (tmp_path / name).write_text((REPO / name).read_text())
    with (tmp_path / "Pulumi.staging.yaml").open("a") as f:
        f.write("  pgbackup:kubeconfig:\n    secure: AAABAKxyz==\n")
    cfg = load_stack_config("staging", project_dir=tmp_path)
    assert "not decrypted offline" in cfg.kubeconfig


def test_unknown_stack_names_the_known_ones() -> None:
    with pytest.raises(ConfigError) as err:
        load_stack_config("prod")
    assert "production" in err.value.fix and err.value.code == ExitCode.NOT_FOUND


BAD_VALUES = [
    # an empty or "/" prefix would scope the reader's grant to the whole bucket
    ("crossStackRead[0].prefix", "/", "pgbackup:crossStackRead[0].prefix"),
    # the stack's name becomes a folder name on the volume (another stack's sets stay apart)
    ("crossStackRead[0].stack", "../production", "pgbackup:crossStackRead[0].stack"),
    ("offsite.prefix", "/", "pgbackup:offsite.prefix"),
    ("databases[0].schedule", "0 2 * *", "pgbackup:databases[0].schedule"),
    ("databases[0].schedule", "0 25 * * *", "pgbackup:databases[0].schedule"),
    ("databases[0].schedule", "every night", "pgbackup:databases[0].schedule"),
    ("databases[0].timeZone", "Mars/Olympus", "pgbackup:databases[0].timeZone"),
    ("databases[0].retentionDays", 0, "pgbackup:databases[0].retentionDays"),
    ("databases[0].keepMin", 0, "pgbackup:databases[0].keepMin"),
    ("databases[0].compression", "brotli", "pgbackup:databases[0].compression"),
    ("databases[0].compression", "gzip:12", "pgbackup:databases[0].compression"),
    ("databases[0].storageSize", "thirty gigs", "pgbackup:databases[0].storageSize"),
    ("databases[0].resources", {"limits": {"cpu": "lots"}}, "pgbackup:databases[0].resources"),
    ("databases[0].retentionDay", 30, "pgbackup:databases[0].retentionDay"),
    ("databases", [], "pgbackup:databases"),
    ("offsite.bucketName", "Vocab_App_Backups", "pgbackup:offsite.bucketName"),
    ("offsite.bucketName", "ab", "pgbackup:offsite.bucketName"),
    ("offsite.retentionDays", 0, "pgbackup:offsite.retentionDays"),
    ("offsite.objectLock", {"days": 90}, "pgbackup:offsite.objectLock.mode"),
    ("offsite.objectLock", {"mode": "STRICT", "days": 90}, "pgbackup:offsite.objectLock.mode"),
    ("offsite.objectLock", {"mode": "COMPLIANCE", "days": 10}, "pgbackup:offsite.objectLock.days"),
    ("offsite.transition", {"days": 10, "storageClass": "STANDARD_IA"}, "transition.days"),
    ("offsite.credentials.mode", "password", "pgbackup:offsite.credentials.mode"),
    ("offsite.credentials.oidcProviderArn", None, "pgbackup:offsite.credentials.oidcProviderArn"),
    ("postgres.passwordSecret.name", None, "pgbackup:postgres.passwordSecret.name"),
    ("postgres.passwordSecret", None, "pgbackup:postgres.passwordSecret"),
    ("postgres.sslMode", "maybe", "pgbackup:postgres.sslMode"),
    ("postgres.port", "five", "pgbackup:postgres.port"),
    ("images.postgres", "postgres:16", "pgbackup:images.postgres"),
    ("images.postgres", "postgres:latest@sha256:" + "a" * 64, "pgbackup:images.postgres"),
    ("images.awsCli", "bitnami/aws-cli:2@sha256:" + "a" * 64, "pgbackup:images.awsCli"),
    ("namespace", None, "pgbackup:namespace"),
    ("namespace", "Vocab App", "pgbackup:namespace"),
    ("appDeployments", ["vocab_app_api"], "pgbackup:appDeployments[0]"),
    ("drill.schedule", "monthly", "pgbackup:drill.schedule"),
    # What the API server or a restore would refuse later, refused here with the key.
    ("databases[0].schedule", "0 2 * * 7", "pgbackup:databases[0].schedule"),
    ("databases[0].schedule", "@DAILY", "pgbackup:databases[0].schedule"),
    ("databases[0].storageSize", "0", "pgbackup:databases[0].storageSize"),
    ("databases[0].storageSize", "30000m", "pgbackup:databases[0].storageSize"),
    ("databases[0].resources", {"limits": {"memory": "512m"}}, "limits.memory"),
    ("databases[0].resources", {"requests": {"cpu": "4"}}, "requests.cpu"),
    ("databases[0].resources", {"requests": {"memory": "2Gi"}}, "requests.memory"),
    ("release", "a" * 30, "pgbackup:release"),  # the drill's CronJob name (drill enabled)
    ("offsite.transition", {"days": 30, "storageClass": "DEEP_ARCHIVE"}, "storageClass"),
    ("alerts.ruleLabels", {"release": "kube prometheus"}, "pgbackup:alerts.ruleLabels.release"),
    ("alerts.ruleLabels", ["release"], "pgbackup:alerts.ruleLabels"),
    ("alerts.webhookSecret", {"name": "hooks"}, "pgbackup:alerts.webhookSecret.key"),
    ("offsite.endpointUrl", "http://minio.storage:9000", "pgbackup:offsite.endpointUrl"),
    ("offsite.endpointUrl", "s3.example.com", "pgbackup:offsite.endpointUrl"),
    ("offsite.endpointUrl", "http://minio.svc.example.com", "pgbackup:offsite.endpointUrl"),
]


@pytest.mark.parametrize(("key", "value", "named"), BAD_VALUES)
def test_bad_value_is_refused_naming_the_key(key: str, value: Any, named: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(**{key: value})
    assert named in err.value.message
    assert err.value.fix, "every refusal says how to fix it"
    assert err.value.code == ExitCode.CONFIG


def test_bad_config_fails_the_program_run_too() -> None:
    """What `pulumi preview` and `pgbackup render` see: the same one-line refusal."""
    with pytest.raises(ConfigError, match=r"pgbackup:databases\[0\]\.schedule"):
        run_program("production", {"databases[0].schedule": "61 2 * * *"})


def test_alert_rule_labels_and_webhook_come_from_the_stack_file() -> None:
    run = run_program(
        "production",
        {
            "alerts.ruleLabels": {"release": "kube-prometheus-stack"},
            "alerts.webhookSecret": {"name": "pgbackup-alert-webhook", "key": "url"},
        },
    )
    (rule,) = [r for r in run.resources if r.inputs.get("kind") == "PrometheusRule"]
    assert rule.inputs["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (routing,) = [r for r in run.resources if r.inputs.get("kind") == "AlertmanagerConfig"]
    (receiver,) = routing.inputs["spec"]["receivers"]
    assert receiver["webhookConfigs"][0]["urlSecret"] == {
        "name": "pgbackup-alert-webhook",
        "key": "url",
    }
    without = run_program("production", {"alerts.webhookSecret": None})
    assert not [r for r in without.resources if r.inputs.get("kind") == "AlertmanagerConfig"]


def test_long_bucket_names_keep_writer_and_reader_apart_and_aliases_valid() -> None:
    from infra import names

    bucket = "a" * 30 + "." + "b" * 32
    writer, reader = names.iam_name(bucket, "writer"), names.iam_name(bucket, "reader")
    assert writer != reader and len(writer) <= 64 and len(reader) <= 64
    assert writer.endswith("-writer") and reader.endswith("-reader")
    assert names.kms_alias("backups.example.com") == "alias/backups-example-com"


def test_a_long_release_is_fine_while_no_drill_cronjob_needs_the_room() -> None:
    cfg = load("staging", release="a" * 30, drill={"enabled": False})
    assert len(cfg.databases[0].cronjob_name) <= 52


def test_plain_http_only_to_a_store_inside_the_cluster() -> None:
    inside = "http://minio.storage.svc.cluster.local:9000"
    assert load("staging", **{"offsite.endpointUrl": inside}).offsite.endpoint_url == inside
