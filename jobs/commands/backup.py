"""`pgbackup backup [--database D]`: a backup now, from the CronJob's own template (or locally)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from jobs import ui
from jobs.backends import add_local_options, open_backend
from jobs.backends.base import BackupResult


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "backup",
        help="take a backup now (a Job from the backup CronJob), and print the restore command",
        description="Take a verified backup now: before upgrades, migrations or risky changes.",
    )
    parser.add_argument("--database", "-d", help="which database (default: the stack's only one)")
    add_local_options(parser)
    parser.set_defaults(run=run)


def restore_command(stack_name: str, local: bool, database: str, backup_id: str) -> str:
    where = "--local " if local else ""
    stack = f"--stack {stack_name} " if stack_name != "local" else ""
    return f"pgbackup {stack}{where}restore {backup_id} --database {database}"


def print_summary(result: BackupResult, restore_hint: str) -> None:
    ui.out(ui.paint("=== Backup Summary ===", "bold"))
    ui.out(f"Database:   {result.database}")
    ui.out(f"Backup id:  {result.id}")
    ui.out(f"Size:       {ui.human_bytes(result.bytes)}")
    ui.out(f"Took:       {result.seconds:.0f} s")
    ui.out(
        f"Status:     {ui.paint(result.status, 'green' if result.status == 'verified' else 'red')}"
    )
    ui.out(f"Location:   {result.path}")
    if result.log:
        ui.out(f"Log:        {result.log}")
    ui.out(f"Created:    {datetime.now(UTC):%a %b %d %H:%M:%S UTC %Y}")
    ui.out("")
    ui.out("To restore this backup, run:")
    ui.out(f"  {restore_hint}")


def run(args: argparse.Namespace) -> int:
    target = open_backend(args)
    ui.info(f"=== PostgreSQL backup of {target.database} ({target.backend.stack_label}) ===")
    with ui.step(f"backing up {target.database}"):
        result = target.backend.run_backup(target.database)
    print_summary(
        result, restore_command(target.stack_name, args.local, result.database, result.id)
    )
    return 0
