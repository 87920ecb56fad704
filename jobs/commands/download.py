"""`pgbackup download ID|latest --to DIR`: an offsite set to a local folder, checksums verified.

The guide's `kubectl cp`, without anyone needing `pods/exec`: the set comes straight from the
bucket with the reader's credentials, into `DIR/<id>.partial/`, and is renamed to `DIR/<id>/`
only once every checksum matched.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jobs import ui
from jobs.backends import add_local_options, open_backend


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "download",
        help="copy an offsite set to a local folder (checksums verified)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("backup_id", metavar="BACKUP_ID", help="a set's id, or latest")
    parser.add_argument("--to", dest="to_dir", required=True, type=Path, help="local folder")
    parser.add_argument("--from", dest="where", choices=["offsite"], default="offsite")
    parser.add_argument("--database", "-d", help="which database (default: the stack's only one)")
    parser.add_argument("--source-stack", help="another stack's set (needs crossStackRead)")
    add_local_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    target = open_backend(args)
    database = target.database
    if args.source_stack:
        from jobs.commands.restore import source_database

        database = source_database(target, args.source_stack)
    with ui.step(f"downloading {database}/{args.backup_id} to {args.to_dir}"):
        result = target.backend.download(database, args.backup_id, args.to_dir, args.source_stack)
    ui.out(
        ui.paint(
            f"✓ {result.database}/{result.id}: {result.files} files, "
            f"{ui.human_bytes(result.bytes)}, checksums verified",
            "green",
        )
    )
    ui.out(f"  {result.path}")
    return 0
