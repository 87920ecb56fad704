"""How far apart a Kubernetes CronJob schedule's runs can be, in the schedule's wall-clock time.

Five fields (minute hour day-of-month month day-of-week) with lists, ranges, steps, names, `?` and
the macros Kubernetes accepts. As in cron, when both day fields are restricted a day matches
either. Runs are laid out over two calendar years (one of them a leap year), so schedules limited
to some months or to the 31st are measured correctly.
"""

from __future__ import annotations

from datetime import date, timedelta

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
FIELDS = (  # (low, high, names)
    (0, 59, None),
    (0, 23, None),
    (1, 31, None),
    (1, 12, MONTHS),
    (0, 7, DAYS),
)


class CronError(ValueError):
    pass


def _value(text: str, low: int, names: list[str] | None) -> int:
    if names and text.lower() in names:
        return names.index(text.lower()) + (1 if low == 1 else 0)
    if not text.isdigit():
        raise CronError(f"{text!r} is not a number")
    return int(text)


def _field(text: str, low: int, high: int, names: list[str] | None) -> tuple[set[int], bool]:
    """The values a field allows, and whether it was restricted (not `*`/`?`)."""
    allowed: set[int] = set()
    restricted = text not in ("*", "?")
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        step = _value(step_text, 0, None) if step_text else 1
        if step < 1:
            raise CronError(f"step in {part!r} must be at least 1")
        if body in ("*", "?"):
            start, end = low, high
        elif "-" in body:
            first, last = body.split("-", 1)
            start, end = _value(first, low, names), _value(last, low, names)
        else:
            start = _value(body, low, names)
            end = high if step_text else start
        if not (low <= start <= high and low <= end <= high and start <= end):
            raise CronError(f"{part!r} is outside {low}-{high}")
        allowed.update(range(start, end + 1, step))
    return allowed, restricted


def longest_gap_hours(schedule: str) -> float:
    """The longest time between two consecutive runs (hours); `inf` if it never runs."""
    fields = MACROS.get(schedule.strip(), schedule).split()
    if len(fields) != 5:
        raise CronError(f"{schedule!r} does not have five fields")
    (minutes, _), (hours, _), (doms, dom_r), (months, _), (dows, dow_r) = (
        _field(text, *spec) for text, spec in zip(fields, FIELDS, strict=True)
    )
    dows = {d % 7 for d in dows}  # 7 is Sunday too
    times = sorted(h * 60 + m for h in hours for m in minutes)
    runs: list[int] = []  # minutes since the start of the window
    start = date(2027, 1, 1)  # 2027 then 2028 (a leap year)
    for offset in range(731):
        day = start + timedelta(days=offset)
        dom_ok, dow_ok = day.day in doms, (day.isoweekday() % 7) in dows
        day_ok = (dom_ok or dow_ok) if (dom_r and dow_r) else (dom_ok and dow_ok)
        if day.month in months and day_ok:
            runs.extend(offset * 1440 + t for t in times)
    if not runs:
        return float("inf")
    # The window wraps: the gap after the last run ends at the first run of the next window.
    gaps = [b - a for a, b in zip(runs, runs[1:], strict=False)]
    gaps.append(runs[0] + 731 * 1440 - runs[-1])
    return max(gaps) / 60
