"""`pgbackup status`: schedule, last runs, newest verified sets, volume usage — in one place.

The guide's "Monitoring" and "Troubleshooting" commands together, without `kubectl exec`: volume
usage comes from a short inventory Job on the Kubernetes backend (from `BACKUP_DIR` locally).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from jobs import ui
from jobs.backends import add_local_options, open_backend
from jobs.backends.base import BackupSet, StatusReport
from jobs.commands.drill import drill_record


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "status",
        help="schedule, last success/failure, newest verified sets, volume usage",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--database", "-d", help="which database (default: the stack's only one)")
    add_local_options(parser)
    parser.set_defaults(run=run)


def _set(item: BackupSet | None) -> str:
    if item is None:
        return ui.paint("none", "red")
    return f"{item.id} ({ui.human_bytes(item.bytes)}, {ui.age(item.finished_at or item.id)})"


def _usage(report: StatusReport) -> str:
    used, size = report.volume_used_bytes, report.volume_size_bytes
    if not size:
        return "unknown"
    percent = 100 * (used or 0) / size
    text = f"{ui.human_bytes(used)} of {ui.human_bytes(size)} ({percent:.0f}%)"
    return ui.paint(text, "red" if percent >= 80 else "green")


def print_report(report: StatusReport) -> None:
    ui.out(ui.paint(f"=== {report.database} ===", "bold"))
    if report.schedule:
        ui.out(f"Schedule:         {report.schedule}")
    if report.suspended is not None:
        state = ui.paint("SUSPENDED", "red") if report.suspended else "active"
        ui.out(f"CronJob:          {state}")
    ui.out(f"Last success:     {report.last_success or 'never'}")
    ui.out(f"Last failure:     {report.last_failure or 'none'}")
    ui.out(f"Newest (volume):  {_set(report.newest_volume)}")
    ui.out(f"Newest (offsite): {_set(report.newest_offsite)}")
    ui.out(f"Volume usage:     {_usage(report)}")
    if report.active_jobs:
        ui.out(f"Running now:      {', '.join(report.active_jobs)}")
    for note in report.notes:
        ui.out(ui.paint(f"note: {note}", "dim"))


def other_folder_notes(report: StatusReport) -> list[str]:
    """What else holds sets on the volume (as the backend found it), and what to do about it."""
    notes = []
    for folder, sets, size in report.other_folders:
        held = f"{folder}: {sets} set(s), {ui.human_bytes(size)}"
        if folder.startswith(".stacks/"):
            notes.append(
                f"{held}, copies of stack {folder.split('/')[1]}'s sets fetched for a rehearsal "
                "(a restore removes its copy once it succeeds; a failed one's goes with the next "
                "rehearsal of that database a day later): remove them if none is planned"
            )
        else:
            notes.append(
                f"{held}, of a database this volume does not back up (another stack's sets that "
                "an older pgbackup fetched there, or put there by hand): remove it if not needed"
            )
    return notes


def _last_drill(path: Path) -> str:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return "none recorded (pgbackup drill)"
    when = record.get("finished_at") or ""
    if record.get("status") == "passed":
        return ui.paint(
            f"passed {when} (set {record.get('id')}, {record.get('rows')} rows)", "green"
        )
    return ui.paint(f"FAILED {when}: {record.get('error', '')}", "red")


def _cluster_drill(runs: tuple[str, str]) -> str:
    """The drill CronJob's record: its Jobs, scheduled or made by `pgbackup drill`."""
    success, failure = runs
    if failure > success:
        return ui.paint(f"FAILED {failure} (kubectl logs -l app=postgres-restore-drill)", "red")
    if success:
        return ui.paint(f"passed {success}", "green")
    return "none yet (the drill CronJob has not run; pgbackup drill runs one now)"


def run(args: argparse.Namespace) -> int:
    target = open_backend(args)
    report = target.backend.status(target.database)
    print_report(report)
    for note in other_folder_notes(report):
        ui.out(f"Also on volume:   {note}")
    if report.drill_runs is not None:
        ui.out(f"Last drill:       {_cluster_drill(report.drill_runs)}")
    else:
        ui.out(f"Last drill:       {_last_drill(drill_record(target, target.database))}")
    return 0
