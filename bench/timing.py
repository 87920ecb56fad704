"""Running a shell pipeline several times and keeping the median: the only clock in the bench."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.cpu import CpuTimes, cpu_now, reap_orphans
from jobs.errors import ExitCode, PgBackupError


@dataclass
class Measurement:
    """One row of the table: a pipeline's wall-clock runs, the CPU each run used, and the size of
    what it wrote."""

    name: str
    label: str
    kind: str  # "backup", "restore", "limit" or "part" (of our restore, timed apart)
    runs: list[float] = field(default_factory=list)
    bytes: int | None = None
    note: str = ""
    cpu: list[CpuTimes] = field(default_factory=list)

    @property
    def seconds(self) -> float | None:
        return statistics.median(self.runs) if self.runs else None

    @property
    def server_cpu(self) -> float | None:
        values = [run.server for run in self.cpu if run.server is not None]
        return statistics.median(values) if values else None

    @property
    def client_cpu(self) -> float | None:
        return statistics.median(run.client for run in self.cpu) if self.cpu else None

    @property
    def cpu_seconds(self) -> float | None:
        """Median CPU-seconds of a run, server and clients together (None without the server's)."""
        totals = [run.server + run.client for run in self.cpu if run.server is not None]
        return statistics.median(totals) if totals else None

    def as_json(self) -> dict[str, object]:
        return {
            "label": self.label,
            "kind": self.kind,
            "seconds": self.seconds,
            "runs": [round(run, 3) for run in self.runs],
            "bytes": self.bytes,
            "note": self.note,
            "cpu_seconds": self.cpu_seconds,
            "server_cpu_seconds": self.server_cpu,
            "client_cpu_seconds": self.client_cpu,
        }

    def record(self, seconds: float, cpu: CpuTimes) -> None:
        self.runs.append(seconds)
        self.cpu.append(cpu)


def run_shell(script: str, env: dict[str, str], what: str) -> subprocess.CompletedProcess[str]:
    """Run one bash pipeline (pipefail on); a failure is one line naming the step and its stderr."""
    done = subprocess.run(
        ["bash", "-o", "errexit", "-o", "pipefail", "-o", "nounset", "-c", script],
        env=env, capture_output=True, text=True, check=False,
        # A session of its own, as a pod's process is: a step that signals its process group
        # must not take the bench down with it.
        start_new_session=True,
    )  # fmt: skip
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-3:]
        raise PgBackupError(
            f"{what} failed (exit {done.returncode}): {' | '.join(tail) or 'no output'}",
            "run `python -m bench --scale 1 --repeat 1` to reproduce quickly; see the stderr above",
            ExitCode.STEP_FAILED,
        )
    return done


def timed(
    step: Callable[[], object], server_data: Path | None = None, reap: bool = False
) -> tuple[float, CpuTimes, object]:
    """Wall-clock seconds of `step`, the CPU it used (of the server whose data folder is
    `server_data`, and of the clients), and its result. `reap`: the processes the step left
    behind are waited for, and charged to it (what an earlier step left, to none)."""
    if reap:
        reap_orphans()
    cpu_before = cpu_now(server_data)
    start = time.monotonic()
    result = step()
    seconds = time.monotonic() - start
    if reap:
        reap_orphans()
    return seconds, cpu_now(server_data) - cpu_before, result


def repeat(
    measurement: Measurement,
    repeat_count: int,
    step: Callable[[], object],
    before: Callable[[], None] | None = None,
    server_data: Path | None = None,
) -> list[object]:
    """Time `step` `repeat_count` times; `before` (untimed) resets the ground before each run."""
    results = []
    for _ in range(repeat_count):
        if before is not None:
            before()
        seconds, cpu, result = timed(step, server_data, reap=True)
        measurement.record(seconds, cpu)
        results.append(result)
    return results


@dataclass
class Pipeline:
    """A row to time: `before` (untimed) resets the ground, `step` is timed, `after` (untimed,
    once at the end) records what was written."""

    row: Measurement
    step: Callable[[], object]
    before: Callable[[], None] | None = None
    after: Callable[[list[object]], None] | None = None
    results: list[object] = field(default_factory=list)


def run_rounds(pipelines: list[Pipeline], count: int, server_data: Path | None = None) -> None:
    """Run every pipeline once per round, `count` rounds: on a shared machine a burst of load then
    hits every row alike instead of all the runs of one row. `server_data`: the data folder of
    the server under test, whose CPU each run is charged with."""
    for _ in range(count):
        for pipeline in pipelines:
            if pipeline.before is not None:
                pipeline.before()
            seconds, cpu, result = timed(pipeline.step, server_data, reap=True)
            pipeline.row.record(seconds, cpu)
            pipeline.results.append(result)
    for pipeline in pipelines:
        if pipeline.after is not None and pipeline.results:
            pipeline.after(pipeline.results)


def tree_bytes(path: Path) -> int:
    """Bytes of a file, or of every file under a folder (what the set costs on the volume)."""
    if path.is_file():
        return path.stat().st_size
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


# Runs a bash script and prints the largest resident set of any process it started (KiB):
# RUSAGE_CHILDREN covers every descendant that was waited for, which is each step of a script.
_PEAK_RSS = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run(['bash', '-c', sys.argv[1]], stdout=subprocess.DEVNULL)\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "print(peak if done.returncode == 0 else -1)\n"
)


def peak_rss_kib(script: str, env: dict[str, str]) -> int | None:
    """The largest single-process memory of one untimed run (sizes the pod's memory request)."""
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, script],
        env=env, capture_output=True, text=True, check=False, start_new_session=True,
    )  # fmt: skip
    try:
        value = int(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    return value if value >= 0 else None
