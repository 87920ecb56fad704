"""CronJob safety and the backup schedule, on real component output."""

from __future__ import annotations

from typing import Any

from policy_cases import assert_fires, assert_passes, backup_cronjob, first_db, render, weakened


def test_concurrency_passes(stack: str) -> None:
    assert_passes(stack, "cronjob-concurrency-forbid")


def test_concurrency_allow_fires() -> None:
    resources = render("production")
    backup_cronjob(resources)["spec"]["concurrencyPolicy"] = "Allow"
    assert_fires("production", resources, "cronjob-concurrency-forbid", "concurrencyPolicy 'Allow'")


def test_deadlines_pass(stack: str) -> None:
    assert_passes(stack, "cronjob-deadlines")


def test_active_deadline_too_long_in_config_fires() -> None:
    def days(db: dict[str, Any]) -> None:
        db["activeDeadlineSeconds"] = 3 * 86400

    resources = weakened("production", "databases", first_db(days))
    assert_fires("production", resources, "cronjob-deadlines", "activeDeadlineSeconds is 259200")


def test_backoff_limit_too_high_in_config_fires() -> None:
    def retries(db: dict[str, Any]) -> None:
        db["backoffLimit"] = 6

    resources = weakened("production", "databases", first_db(retries))
    assert_fires("production", resources, "cronjob-deadlines", "backoffLimit is 6")


def test_missing_starting_deadline_fires() -> None:
    resources = render("staging")
    del backup_cronjob(resources)["spec"]["startingDeadlineSeconds"]
    assert_fires("staging", resources, "cronjob-deadlines", "no startingDeadlineSeconds")


def test_history_limits_pass(stack: str) -> None:
    assert_passes(stack, "cronjob-history-limits")


def test_failed_history_zero_fires() -> None:
    # Stack config refuses 0 (rightly), so the rendered CronJob is weakened instead.
    resources = render("production")
    backup_cronjob(resources)["spec"]["failedJobsHistoryLimit"] = 0
    assert_fires("production", resources, "cronjob-history-limits", "failedJobsHistoryLimit is 0")


def test_schedule_passes(stack: str) -> None:
    assert_passes(stack, "backup-schedule-daily")


def test_weekly_schedule_in_config_fires() -> None:
    def weekly(db: dict[str, Any]) -> None:
        db["schedule"] = "0 2 * * 0"

    resources = weakened("production", "databases", first_db(weekly))
    hit = assert_fires("production", resources, "backup-schedule-daily", "168 h apart")
    assert "'0 2 * * *'" in hit.message


def test_suspended_backup_in_config_fires() -> None:
    def suspend(db: dict[str, Any]) -> None:
        db["suspend"] = True

    resources = weakened("staging", "databases", first_db(suspend))
    assert_fires("staging", resources, "backup-schedule-daily", "is suspended")


def test_short_ttl_in_config_fires() -> None:
    def short(db: dict[str, Any]) -> None:
        db["ttlSecondsAfterFinished"] = 7200

    resources = weakened("production", "databases", first_db(short))
    assert_fires(
        "production", resources, "cronjob-history-limits", "ttlSecondsAfterFinished is 7200"
    )


def test_a_backup_cronjob_stripped_of_its_labels_is_still_held_to_the_backup_rules() -> None:
    """It is recognised by what it runs (backup.sh), so dropping a label hides nothing."""
    resources = render("production")
    cronjob = backup_cronjob(resources)
    for labels in (
        cronjob["metadata"]["labels"],
        cronjob["spec"]["jobTemplate"]["metadata"].get("labels") or {},
        cronjob["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"],
    ):
        labels.pop("app", None)
    cronjob["spec"]["schedule"] = "0 2 1 * *"
    cronjob["spec"]["suspend"] = True
    assert_fires("production", resources, "backup-schedule-daily", "is suspended")
    assert_fires("production", resources, "backup-schedule-daily", "runs up to")
