"""Retention floors and volume size from each stack's policy config, on real component output."""

from __future__ import annotations

from typing import Any

from policy_cases import (
    assert_fires,
    assert_passes,
    backup_cronjob,
    first_db,
    outcomes,
    render,
    weakened,
)


def test_retention_floor_passes(stack: str) -> None:
    assert_passes(stack, "retention-floor")


def test_local_retention_below_production_floor_fires() -> None:
    def short(db: dict[str, Any]) -> None:
        db["retentionDays"] = 7

    resources = weakened("production", "databases", first_db(short))
    hit = assert_fires(
        "production", resources, "retention-floor", "RETENTION_DAYS=7", "floor of 30"
    )
    assert "databases[].retentionDays" in hit.message
    # The same setting is within staging's floor: floors are per stack.
    assert [o.result for o in outcomes("staging", resources, "retention-floor")] == ["pass"]


def test_keep_min_below_floor_fires() -> None:
    def few(db: dict[str, Any]) -> None:
        db["keepMin"] = 2

    resources = weakened("staging", "databases", first_db(few))
    assert_fires("staging", resources, "retention-floor", "KEEP_MIN=2", "floor of 3")


def test_offsite_retention_below_floor_fires() -> None:
    def shorter(offsite: dict[str, Any]) -> None:
        offsite["retentionDays"] = 60
        offsite.pop("transition", None)
        offsite["objectLock"]["days"] = 60

    resources = weakened("production", "offsite", shorter)
    assert_fires("production", resources, "retention-floor", "after 60 days", "floor of 90")


def test_pvc_size_passes(stack: str) -> None:
    assert_passes(stack, "pvc-min-size")


def test_small_pvc_in_config_fires() -> None:
    def small(db: dict[str, Any]) -> None:
        db["storageSize"] = "20Gi"

    resources = weakened("production", "databases", first_db(small))
    assert_fires("production", resources, "pvc-min-size", "requests 20Gi, less than 30Gi")
    assert [o.result for o in outcomes("staging", render("staging"), "pvc-min-size")] == ["pass"]


def test_retention_not_set_at_all_fires() -> None:
    resources = render("production")
    pod = backup_cronjob(resources)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    for container in pod["initContainers"] + pod["containers"]:
        container["env"] = [e for e in container["env"] if e["name"] != "RETENTION_DAYS"]
    assert_fires("production", resources, "retention-floor", "does not set RETENTION_DAYS")
