"""Fixtures of the policy tests; the helpers live in `policy_cases`."""

from __future__ import annotations

import pytest
from policy_cases import STACKS


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> str:
    """Each shipped stack in turn."""
    return str(request.param)
