"""CPU time a run used: by the server under test, and by the client processes the bench started.

On 2 cores every pipeline here is CPU-bound, so the CPU it needs bounds how fast it can be: half
its CPU-seconds is a floor on its time. Read from Linux's /proc and getrusage; elsewhere None.
"""

from __future__ import annotations

import ctypes
import os
import resource
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PR_SET_CHILD_SUBREAPER = 36


@dataclass(frozen=True)
class CpuTimes:
    """Cumulative CPU-seconds so far; subtract two samples for what a run used."""

    server: float | None
    client: float

    def __sub__(self, earlier: CpuTimes) -> CpuTimes:
        server = None
        if self.server is not None and earlier.server is not None:
            server = self.server - earlier.server
        return CpuTimes(server, self.client - earlier.client)


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _ticks(fields: list[str]) -> int:
    """utime + stime + cutime + cstime: a process's CPU and that of the children it reaped.
    (State is field 3 of stat; those are fields 14-17, here 11-14.)"""
    return sum(int(value) for value in fields[11:15])


def server_cpu_seconds(data_dir: Path) -> float | None:
    """CPU of the server whose data folder is DATA_DIR: its postmaster, the backends that have
    exited (the postmaster's reaped children) and the processes still running. A backend reaped
    while /proc is being read would be in neither part: the reading is then taken again."""
    try:
        postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    for _ in range(5):
        fields = _stat_fields(postmaster)
        if fields is None:
            return None
        own = _ticks(fields)
        running = 0
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                child = _stat_fields(int(entry.name))
                if child is not None and child[1] == str(postmaster):
                    running += _ticks(child)
        after = _stat_fields(postmaster)
        if after is not None and _ticks(after) == own:
            break
    return (own + running) / _TICKS


def become_subreaper() -> bool:
    """Processes a run leaves behind are reparented to this one instead of init, so that waiting
    for them counts their CPU. bash does not always wait for a process substitution (the scripts
    hash a set's files in one): without this, that CPU was charged to no run, or to none reliably.
    Linux only; False elsewhere."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def reap_orphans() -> None:
    """Wait for every child that has exited and that nothing else waits for (see
    become_subreaper). Not while another thread runs subprocesses: their exit status would be
    taken from them."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def client_cpu_seconds() -> float:
    """CPU of every process this bench started and has waited for, with their descendants."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_now(data_dir: Path | None) -> CpuTimes:
    server = server_cpu_seconds(data_dir) if data_dir is not None else None
    return CpuTimes(server, client_cpu_seconds())
