"""Advisory rules: judgements a reviewer should see, which never block a deployment."""

from __future__ import annotations

from typing import Any

from policy_cases import assert_fires, assert_passes, weakened


def test_drill_enabled_passes_in_production() -> None:
    assert_passes("production", "restore-drill-enabled")


def test_drill_disabled_is_advised() -> None:
    def off(drill: dict[str, Any]) -> None:
        drill["enabled"] = False

    resources = weakened("production", "drill", off)
    assert_fires(
        "production",
        resources,
        "restore-drill-enabled",
        "no scheduled restore drill",
        result="warn",
    )


def test_alerts_enabled_passes_in_production() -> None:
    assert_passes("production", "backup-alerts-enabled")


def test_alerts_disabled_is_advised() -> None:
    def off(alerts: dict[str, Any]) -> None:
        alerts["enabled"] = False

    resources = weakened("production", "alerts", off)
    assert_fires(
        "production", resources, "backup-alerts-enabled", "no alerting rules", result="warn"
    )
