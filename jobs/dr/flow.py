"""The rebuild as an ordered list of steps, each recorded once done so a re-run resumes.

A target (`jobs.dr.kubernetes_target`, `jobs.dr.local_target`) supplies the steps; this module only
orders, skips, times and records them. A step returns one line for the timeline and may leave
facts (the set id, the app's replica counts) in `state.facts` for the steps after it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from jobs.dr.state import RebuildState, StepRecord
from jobs.ui import info, paint


@dataclass(frozen=True)
class Step:
    name: str
    plan: str  # what it will do, for --dry-run and the progress line
    run: Callable[[RebuildState], str]


def print_plan(steps: Sequence[Step], state: RebuildState) -> None:
    """The plan of `--dry-run`: nothing is called, nothing is written."""
    info(
        paint(f"Plan for rebuilding stack {state.stack} (dry run: nothing will be changed)", "bold")
    )
    for number, step in enumerate(steps, 1):
        mark = " (done in an earlier run: skipped)" if state.done(step.name) else ""
        info(f"  {number}. {step.name:<12} {step.plan}{mark}")
    info(f"Resume state: {state.path}")


def run_steps(
    steps: Sequence[Step], state: RebuildState, now: Callable[[], float] = time.time
) -> None:
    """Run the steps not yet done, in order, recording each as it completes. A failing step
    raises; what was done before it stays recorded for the next run."""
    total = len(steps)
    for number, step in enumerate(steps, 1):
        if state.done(step.name):
            info(paint(f"[{number}/{total}] {step.name}: done in an earlier run, skipped", "dim"))
            continue
        info(paint(f"[{number}/{total}] {step.name}: {step.plan}", "bold"))
        started = now()
        detail = step.run(state)
        finished = now()
        state.record(StepRecord(step.name, started, finished, detail))
        info(f"    {detail} ({finished - started:.1f} s)")
    state.finished_at = max(r.finished_at for r in state.steps.values()) if state.steps else now()
    state.save()
