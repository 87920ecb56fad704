"""Fixtures for the Pulumi program tests: each shipped stack run once through the mock runtime
and rendered once to files (per test worker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.mock_run import ProgramRun, run_program
from infra.render import render

STACKS = ("staging", "production")


@pytest.fixture(scope="session")
def runs() -> dict[str, ProgramRun]:
    return {stack: run_program(stack) for stack in STACKS}


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("render")
    for stack in STACKS:
        render(stack, root / stack)
    return {stack: root / stack for stack in STACKS}
