"""App downtime of a restore: the window in which connections to the live database are refused.

A probe thread connects in a loop (a new psql each time, as a fresh app connection would) while
`restore.sh` runs `RESTORE_STEP=swap` after an untimed-for-downtime `RESTORE_STEP=prepare`. The
guide's procedure keeps the app down for the whole drop + create + replay, so its downtime is its
restore time.
"""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass, field

from bench.context import BenchContext
from bench.pipelines import (
    clear_restore_leftovers,
    put_original_back,
    run_restore_script,
    script_missing,
)
from bench.timing import timed


@dataclass
class Probe:
    ctx: BenchContext
    database: str
    attempts: list[tuple[float, float, bool]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _connect_once(self) -> bool:
        env = self.ctx.tool_env(self.database)
        env["PGCONNECT_TIMEOUT"] = "2"
        done = subprocess.run(
            ["psql", "-X", "-At", "-c", "SELECT 1"],
            env=env, capture_output=True, text=True, check=False, timeout=10,
        )  # fmt: skip
        return done.returncode == 0

    def _loop(self) -> None:
        while not self._stop.is_set():
            start = time.monotonic()
            ok = self._connect_once()
            self.attempts.append((start, time.monotonic(), ok))

    def __enter__(self) -> Probe:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        time.sleep(0.5)  # a baseline of successful connections before the step starts
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.5)  # and after it: the window must be closed by a success
        self._stop.set()
        if self._thread:
            self._thread.join()

    def refused_window(self) -> tuple[float, int]:
        """(seconds, failed attempts): from the end of the last success before the first refusal
        to the start of the first success after the last refusal — an upper bound, accurate to
        one probe round trip."""
        failures = [i for i, (_, _, ok) in enumerate(self.attempts) if not ok]
        if not failures:
            return 0.0, 0
        first, last = failures[0], failures[-1]
        opened = self.attempts[first - 1][1] if first > 0 else self.attempts[first][0]
        closed = (
            self.attempts[last + 1][0] if last + 1 < len(self.attempts) else self.attempts[last][1]
        )
        return closed - opened, len(failures)


def measure(
    ctx: BenchContext, backup_id: str, guide_restore_seconds: float | None
) -> dict[str, object]:
    missing = script_missing(ctx, "restore.sh") or (None if backup_id else "no backup set")
    result: dict[str, object] = {
        "guide_downtime_s": guide_restore_seconds,
        "guide_note": "the guide scales the app down for the whole drop, create and replay",
    }
    if missing:
        result["note"] = missing
        return result
    clear_restore_leftovers(ctx, ctx.database)
    prepare_s, _, _ = timed(
        lambda: run_restore_script(ctx, ctx.database, backup_id, RESTORE_STEP="prepare")
    )
    with Probe(ctx, ctx.database) as probe:
        swap_s, _, _ = timed(
            lambda: run_restore_script(ctx, ctx.database, backup_id, RESTORE_STEP="swap")
        )
    put_original_back(ctx, ctx.database)
    window, failed = probe.refused_window()
    round_trips = [end - start for start, end, _ in probe.attempts]
    result.update(
        {
            "ours_prepare_s": prepare_s,
            "ours_swap_step_s": swap_s,
            "ours_refused_window_s": window,
            "ours_refused_attempts": failed,
            "probe_attempts": len(probe.attempts),
            "probe_round_trip_s": sorted(round_trips)[len(round_trips) // 2]
            if round_trips
            else None,
        }
    )
    return result
