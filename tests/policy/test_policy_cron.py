"""The schedule arithmetic behind `backup-schedule-daily`."""

from __future__ import annotations

import pytest

from policy.rules.cron import CronError, longest_gap_hours


@pytest.mark.parametrize(
    ("schedule", "hours"),
    [
        ("0 2 * * *", 24),
        ("@daily", 24),
        ("30 */6 * * *", 6),
        ("0 2,14 * * *", 12),
        ("0 2 * * MON-FRI", 72),  # Friday 02:00 to Monday 02:00
        ("0 2 * * 0", 168),
        ("0 4 1 * *", 31 * 24),
        ("0 2 * 1-6 *", 185 * 24),  # daily, but only half the year
        ("0 2 1 * 1", 7 * 24),  # both day fields restricted: either matches
        ("0 2 29 2 *", 731 * 24),  # Feb 29th: at most once in the two years laid out
    ],
)
def test_longest_gap(schedule: str, hours: float) -> None:
    assert longest_gap_hours(schedule) == hours


@pytest.mark.parametrize("schedule", ["0 2 * *", "61 2 * * *", "0 2 * * */0", "x 2 * * *"])
def test_unreadable_schedules_are_refused(schedule: str) -> None:
    with pytest.raises(CronError):
        longest_gap_hours(schedule)
