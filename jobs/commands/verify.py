"""`pgbackup verify ID|latest [--from volume|offsite]`: checksums and the archive's listing."""

from __future__ import annotations

import argparse

from jobs import ui
from jobs.backends import add_local_options, open_backend
from jobs.backends.base import WHERES
from jobs.errors import ExitCode, PgBackupError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "verify", help="verify a set's checksums and archive listing", description=__doc__
    )
    parser.add_argument("backup_id", metavar="BACKUP_ID", help="a set's id, or latest")
    parser.add_argument("--from", dest="where", choices=WHERES, default="volume")
    parser.add_argument("--database", "-d", help="which database (default: the stack's only one)")
    add_local_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    target = open_backend(args)
    backup_id = target.backend.resolve(target.database, args.backup_id, args.where)
    with ui.step(f"verifying {target.database}/{backup_id} ({args.where})"):
        result = target.backend.verify(target.database, backup_id, args.where)
    if not result.ok:
        raise PgBackupError(
            f"set {result.id} of {result.database} did not verify ({args.where})",
            "do not restore it; pick another set from `pgbackup list`",
            ExitCode.CORRUPT,
        )
    check = result.detail.get("verification") or {}
    entries = result.detail.get("toc_entries") or check.get("toc_entries")
    extra = f", {entries} archive entries" if entries else ""
    ui.out(ui.paint(f"✓ {result.database}/{result.id} verified ({args.where}{extra})", "green"))
    return 0
