"""Fixtures of the in-container step tests (jobs/scripts/)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The helper modules beside the tests are imported by name.
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def backup_dir(tmp_path: Path) -> Path:
    """The backup volume of one test."""
    path = tmp_path / "backups"
    path.mkdir()
    return path
