"""Terminal output: tables, progress lines, colour only on a terminal, the typed confirmation."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from jobs.errors import ExitCode, PgBackupError

_COLOURS = {"red": "31", "green": "32", "yellow": "33", "bold": "1", "dim": "2"}


def _colour_on(stream: object) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def paint(text: str, colour: str, stream: object = None) -> str:
    """`text` in `colour` when `stream` (stdout by default) is a terminal; plain otherwise."""
    if not _colour_on(stream or sys.stdout):
        return text
    return f"\033[{_COLOURS[colour]}m{text}\033[0m"


def out(line: str = "") -> None:
    print(line, flush=True)


def info(line: str) -> None:
    """Progress and notes: stderr, so stdout stays the result."""
    print(line, file=sys.stderr, flush=True)


@contextmanager
def step(title: str) -> Iterator[None]:
    """`==> title` ... `    done in 2.1 s`: progress for a long step."""
    info(paint(f"==> {title}", "bold", sys.stderr))
    started = time.monotonic()
    yield
    info(paint(f"    done in {time.monotonic() - started:.1f} s", "dim", sys.stderr))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def human_bytes(count: int | None) -> str:
    if count is None:
        return "?"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


def parse_time(value: str) -> datetime | None:
    """An ISO-8601 time or a set id (`20260119t020000z`, maybe `-2`), as aware UTC."""
    if not value:
        return None
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        try:
            parsed = datetime.strptime(text.split("-")[0].upper(), "%Y%m%dT%H%M%SZ")
        except ValueError:
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def age(value: str, now: datetime | None = None) -> str:
    when = parse_time(value)
    if when is None:
        return "?"
    seconds = int(((now or datetime.now(UTC)) - when).total_seconds())
    if seconds < 0:
        return "just now"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def confirm_typed(expected: str, assume_yes: bool, what: str) -> None:
    """Ask for `expected` typed back. `--yes` skips the question; without a terminal and without
    `--yes` nothing is asked and the action is refused (ABORTED)."""
    if assume_yes:
        return
    if not sys.stdin.isatty():
        raise PgBackupError(
            f"{what} needs confirmation and stdin is not a terminal",
            "run it in a terminal, or pass --yes once you have read the plan",
            ExitCode.ABORTED,
        )
    prompt = paint(f"Type the database name ({expected}) to continue: ", "yellow", sys.stderr)
    print(prompt, end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline().strip()
    if answer != expected:
        raise PgBackupError(
            f"confirmation did not match ({answer!r} is not {expected!r}); nothing was changed",
            "run the command again and type the database name exactly",
            ExitCode.ABORTED,
        )
