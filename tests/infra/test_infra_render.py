"""The offline render: files like `helm template`, every Kubernetes object valid for the API
server versions we support, and checkov-clean."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from jobs.cli import main as pgbackup

REPO = Path(__file__).resolve().parents[2]
KUBERNETES_VERSIONS = ("1.30", "1.33")


def manifests(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    files = sorted((folder / "kubernetes").glob("*.yaml"))
    assert files, f"nothing rendered in {folder}"
    return [(f, yaml.safe_load(f.read_text())) for f in files]


def floats(value: Any) -> list[Any]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        return [f for v in value.values() for f in floats(v)]
    if isinstance(value, list):
        return [f for v in value for f in floats(v)]
    return []


def test_render_writes_one_file_per_object(rendered: dict[str, Path]) -> None:
    production = rendered["production"]
    kinds = sorted(doc["kind"] for _, doc in manifests(production))
    assert kinds == [
        "ConfigMap",
        "CronJob",
        "CronJob",
        "PersistentVolumeClaim",
        "PrometheusRule",
        "Role",
        "RoleBinding",
        "ServiceAccount",
        "ServiceAccount",
    ]
    aws = {yaml.safe_load(f.read_text())["type"] for f in (production / "aws").glob("*.yaml")}
    assert "aws:s3/bucket:Bucket" in aws and "aws:iam/rolePolicy:RolePolicy" in aws
    bucket = yaml.safe_load(next((production / "aws").glob("bucket-*.yaml")).read_text())
    assert bucket["options"]["protect"] is True
    exports = yaml.safe_load((production / "exports.yaml").read_text())
    assert exports["cronJobNames"] == ["vocab-app-postgres-backup"]


def test_numbers_are_integers_again(rendered: dict[str, Path]) -> None:
    for folder in rendered.values():
        for path, doc in manifests(folder):
            assert floats(doc) == [], path.name


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_passes_strict_schema_validation(
    rendered: dict[str, Path], version: str
) -> None:
    checked = 0
    for folder in rendered.values():
        for path, doc in manifests(folder):
            if doc["kind"] == "PrometheusRule":
                # A custom resource: its schema ships with the Prometheus Operator, not with
                # Kubernetes; test_prometheus_rule_matches_the_operator_schema checks it.
                continue
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                pytest.fail(f"{folder.name}/{path.name} invalid for {version}: {error.message}")
            checked += 1
    assert checked == 16  # staging 8 + production 9 objects, less the PrometheusRule


def _checkov() -> str | None:
    candidate = os.environ.get("CHECKOV") or str(REPO / ".venv-checkov" / "bin" / "checkov")
    return candidate if Path(candidate).is_file() else None


@pytest.mark.skipif(_checkov() is None, reason="checkov's venv is not installed (make checkov-env)")
def test_checkov_finds_nothing(rendered: dict[str, Path]) -> None:
    checkov = _checkov()
    assert checkov is not None
    # Both stacks in one run (checkov takes long to start); it reads only the Kubernetes objects.
    (root,) = {folder.parent for folder in rendered.values()}
    # --skip-download: no Prisma Cloud metadata (no network here); the checks are all local.
    result = subprocess.run(
        [checkov, "--framework", "kubernetes", "-d", str(root), "-o", "json", "--skip-download"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.stdout.startswith(("{", "[")), result.stderr[-2000:]
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [
        f"{c['check_id']} {c['check_name']} ({c['file_path']})"
        for r in reports
        for c in r["results"]["failed_checks"]
    ]
    assert failed == []
    # staging 8 objects, production 9 (its PrometheusRule), as rendered
    assert sum(r["summary"]["resource_count"] for r in reports) == 17
    assert sum(r["summary"]["passed"] for r in reports) > 100
    assert sum(r["summary"]["skipped"] for r in reports) == 0


def test_render_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "staging"
    assert pgbackup(["render", "--stack", "staging", "--out", str(out)]) == 0
    assert "8 Kubernetes objects" in capsys.readouterr().out
    assert (out / "kubernetes" / "cronjob-vocab-app-postgres-backup.yaml").is_file()


def test_render_command_refuses_bad_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "Pulumi.yaml").write_text((REPO / "Pulumi.yaml").read_text())
    stack = yaml.safe_load((REPO / "Pulumi.staging.yaml").read_text())
    stack["config"]["pgbackup:databases"][0]["retentionDays"] = 0
    (project / "Pulumi.broken.yaml").write_text(yaml.safe_dump(stack))
    out = tmp_path / "out"
    code = pgbackup(["render", "-s", "broken", "--project-dir", str(project), "--out", str(out)])
    assert code == 78
    assert "pgbackup:databases[0].retentionDays" in capsys.readouterr().err


# The parts of the Prometheus Operator's PrometheusRule CRD (monitoring.coreos.com/v1) we use,
# strict: a misspelt field fails here as the API server's structural schema would reject it.
_DURATION = {
    "type": "string",
    "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?"
    "(([0-9]+)s)?(([0-9]+)ms)?)$",
}
_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
PROMETHEUS_RULE_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": {"type": "object", "required": ["name", "namespace"]},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "groups": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "rules"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": _DURATION,
                            "rules": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["expr"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "alert": {"type": "string"},
                                        "record": {"type": "string"},
                                        "expr": {"type": "string", "minLength": 1},
                                        "for": _DURATION,
                                        "keep_firing_for": _DURATION,
                                        "labels": _STRINGS,
                                        "annotations": _STRINGS,
                                    },
                                },
                            },
                        },
                    },
                }
            },
        },
    },
}


def test_prometheus_rule_matches_the_operator_schema(rendered: dict[str, Path]) -> None:
    rules = [doc for _, doc in manifests(rendered["production"]) if doc["kind"] == "PrometheusRule"]
    assert len(rules) == 1
    jsonschema.validate(rules[0], PROMETHEUS_RULE_SCHEMA)
