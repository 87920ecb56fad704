"""Every in-container step is shellcheck-clean (following the files they source)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from pg_script_helpers import REPO, SCRIPTS


def test_scripts_are_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed")
    scripts = sorted(str(p.relative_to(REPO)) for p in SCRIPTS.glob("*.sh"))
    assert scripts
    result = subprocess.run(
        [shellcheck, "-x", *scripts], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
