"""`pgbackup`: the operator CLI. One module per command under `jobs/commands/`.

Each command module exposes `register(subparsers)`, which adds its parser and sets `run=` to a
function taking the parsed arguments and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence

from jobs.errors import ExitCode, PgBackupError

# Order is the order of `pgbackup --help`.
COMMANDS = (
    "backup",
    "list_sets",
    "verify",
    "restore",
    "download",
    "status",
    "drill",
    "dr_rebuild",
    "render",
    "policy",
    "demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pgbackup",
        description="PostgreSQL backup, restore and disaster recovery for a Pulumi stack.",
    )
    parser.add_argument("--stack", "-s", help="stack name (reads Pulumi.<stack>.yaml)")
    parser.add_argument(
        "--local",
        action="store_true",
        help="run the steps here as subprocesses against libpq's PG* variables and S3_ENDPOINT_URL",
    )
    parser.add_argument("--kubeconfig", help="kubeconfig for the Kubernetes backend")
    parser.add_argument("--context", help="kubeconfig context for the Kubernetes backend")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module_name = f"jobs.commands.{name}"
        if importlib.util.find_spec(module_name) is None:
            continue
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except PgBackupError as error:
        print(f"pgbackup: {error}", file=sys.stderr)  # one line: cause — fix
        return int(error.code)
    except KeyboardInterrupt:
        print("pgbackup: interrupted; nothing further was changed", file=sys.stderr)
        return int(ExitCode.ABORTED)


if __name__ == "__main__":
    sys.exit(main())
