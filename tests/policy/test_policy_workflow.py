"""The pull-request workflow shipped for users' repositories: what it runs, and its shell steps
are shellcheck-clean."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "pr.yml"


def _workflow() -> dict[Any, Any]:
    data = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(data, dict)
    return data


def _runs(job: dict[str, Any]) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


def test_runs_on_every_pull_request() -> None:
    # PyYAML reads the key `on` as True.
    assert "pull_request" in _workflow()[True]


def test_runs_the_tests_the_offline_review_and_the_preview_per_stack() -> None:
    jobs = _workflow()["jobs"]
    assert "make test" in _runs(jobs["test"])
    for name in ("policy-offline", "policy-preview"):
        assert jobs[name]["strategy"]["matrix"]["stack"] == ["staging", "production"]
    assert any(
        "pgbackup --stack ${{ matrix.stack }} policy" in r for r in _runs(jobs["policy-offline"])
    )
    preview = "\n".join(_runs(jobs["policy-preview"]))
    assert "--policy-pack policy" in preview
    assert '--policy-pack-config "policy/config/${STACK}.json"' in preview


def test_preview_runs_only_where_credentials_exist() -> None:
    steps = _workflow()["jobs"]["policy-preview"]["steps"]
    assert steps[0]["id"] == "creds"
    assert all(step.get("if") == "steps.creds.outputs.present == 'true'" for step in steps[1:])


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_shell_steps_are_shellcheck_clean(tmp_path: Path) -> None:
    for index, script in enumerate(
        run for job in _workflow()["jobs"].values() for run in _runs(job)
    ):
        # GitHub substitutes ${{ ... }} before bash runs; stand in a plain word for shellcheck.
        body = re.sub(r"\$\{\{[^}]*\}\}", "expr", script)
        path = tmp_path / f"step{index}.sh"
        path.write_text(f"#!/usr/bin/env bash\nset -euo pipefail\n{body}")
        result = subprocess.run(["shellcheck", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout
