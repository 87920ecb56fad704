"""`pgbackup --stack STACK policy`: the offline review a pull request gets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

import infra.mock_run
from jobs.cli import main
from jobs.errors import ExitCode

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_shipped_stacks_pass(stack: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--stack", stack, "policy"]) == ExitCode.OK
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].split() == ["RULE", "RESOURCE", "RESULT", "MESSAGE"]
    assert "s3-bucket-versioning" in printed and "pod-non-root" in printed
    assert f"stack {stack}: no mandatory violations" in printed


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the project's stack files the test may weaken."""
    for name in ("Pulumi.yaml", "Pulumi.staging.yaml", "Pulumi.production.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    monkeypatch.setattr(infra.mock_run, "PROJECT_DIR", tmp_path)
    monkeypatch.setenv("PGBACKUP_PROJECT_DIR", str(tmp_path))
    return tmp_path


def test_weakening_production_fails_with_the_fix(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = project / "Pulumi.production.yaml"
    stack = yaml.safe_load(path.read_text())
    stack["config"]["pgbackup:databases"][0]["schedule"] = "0 2 * * 0"  # weekly
    stack["config"]["pgbackup:databases"][0]["retentionDays"] = 7
    path.write_text(yaml.safe_dump(stack))

    assert main(["--stack", "production", "policy", "--problems-only"]) == ExitCode.VIOLATIONS
    printed = capsys.readouterr().out
    failing = [line for line in printed.splitlines() if " FAIL " in line]
    assert any(line.startswith("backup-schedule-daily") for line in failing)
    assert any(line.startswith("retention-floor") for line in failing)
    assert "Fix: set databases[].retentionDays to at least 30" in printed
    assert "stack production: 2 mandatory violation(s)" in printed
    assert " PASS " not in printed  # --problems-only


def test_enforcement_level_comes_from_the_policy_config(
    tmp_path: Path, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = project / "Pulumi.staging.yaml"
    stack = yaml.safe_load(path.read_text())
    stack["config"]["pgbackup:databases"][0]["schedule"] = "0 2 * * 0"
    path.write_text(yaml.safe_dump(stack))
    config = json.loads((REPO / "policy" / "config" / "staging.json").read_text())
    config["backup-schedule-daily"] = {"enforcementLevel": "advisory"}
    relaxed = tmp_path / "relaxed.json"
    relaxed.write_text(json.dumps(config))

    assert main(["--stack", "staging", "policy", "--policy-config", str(relaxed)]) == ExitCode.OK
    assert "WARN" in capsys.readouterr().out


def test_stack_may_follow_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "--stack", "staging", "--problems-only"]) == ExitCode.OK
    assert "stack staging: no mandatory violations" in capsys.readouterr().out


def test_missing_stack_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy"]) == ExitCode.USAGE
    assert "pass --stack" in capsys.readouterr().err


def test_unknown_policy_in_config_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"s3-bucket-versionning": {}}))
    code = main(["--stack", "staging", "policy", "--policy-config", str(bad)])
    assert code == ExitCode.CONFIG
    assert "s3-bucket-versionning" in capsys.readouterr().err


def test_stack_without_policy_config_is_not_found(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--stack", "qa", "policy"]) == ExitCode.NOT_FOUND
    assert "policy/config/qa.json" in capsys.readouterr().err


def test_misspelt_setting_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"retention-floor": {"minRetentionDay": 30}}))
    assert main(["--stack", "staging", "policy", "--policy-config", str(bad)]) == ExitCode.CONFIG
    assert "has no setting 'minRetentionDay'" in capsys.readouterr().err
