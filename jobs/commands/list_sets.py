"""`pgbackup list`: the sets on the volume and offsite, as a table."""

from __future__ import annotations

import argparse

from jobs import ui
from jobs.backends import add_local_options, open_backend
from jobs.backends.base import WHERES, BackupSet


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "list", help="list backup sets on the volume and offsite", description=__doc__
    )
    parser.add_argument("--database", "-d", help="only this database")
    parser.add_argument("--from", dest="where", choices=WHERES, help="only the volume or offsite")
    add_local_options(parser)
    parser.set_defaults(run=run)


def rows(sets: list[BackupSet]) -> list[list[str]]:
    table = []
    for item in sets:
        verified = {"verified": "yes", "failed": "FAILED", "incomplete": "incomplete"}.get(
            item.status, item.status or "?"
        )
        table.append(
            [
                item.id,
                item.database,
                ui.human_bytes(item.bytes),
                ui.age(item.finished_at or item.id),
                verified,
                item.where,
            ]
        )
    return table


def run(args: argparse.Namespace) -> int:
    target = open_backend(args)
    database = args.database or (target.database if target.stack else None)
    sets = target.backend.list_sets(database, args.where)
    sets.sort(key=lambda s: (s.database, s.id, s.where), reverse=True)
    if not sets:
        ui.info("no backup sets found")
        return 0
    ui.out(ui.table(["id", "database", "size", "age", "verified", "where"], rows(sets)))
    return 0
