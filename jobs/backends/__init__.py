"""Choosing a backend from the command line: `--local` or the stack's Kubernetes namespace.

`open_backend(args)` is what every command calls; `add_local_options(parser)` adds the local
backend's options (each also read from the environment) to a subcommand.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

from jobs.backends.base import Backend
from jobs.errors import ExitCode, PgBackupError
from jobs.stack import StackContext, load_stack


def add_local_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("local backend (--local)")
    group.add_argument("--backup-dir", help="the volume's stand-in folder (default: $BACKUP_DIR)")
    group.add_argument("--s3-bucket", help="offsite bucket (default: $S3_BUCKET, else the stack's)")
    group.add_argument("--s3-endpoint-url", help="S3 endpoint (default: $S3_ENDPOINT_URL)")


@dataclass(frozen=True)
class Target:
    backend: Backend
    stack: StackContext | None
    stack_name: str
    database: str


def _database(args: argparse.Namespace, stack: StackContext | None) -> str:
    wanted = getattr(args, "database", None)
    if stack is not None and not args.local:
        return stack.database(wanted).name
    if wanted:
        return str(wanted)
    if os.environ.get("PGDATABASE"):
        return os.environ["PGDATABASE"]
    if stack is not None:
        return stack.database(None).name
    raise PgBackupError(
        "no database named",
        "pass --database, or set PGDATABASE (or --stack for the stack's database)",
        ExitCode.USAGE,
    )


def open_backend(args: argparse.Namespace) -> Target:
    """The backend and database the command line names."""
    stack = load_stack(args.stack) if args.stack else None
    if args.local:
        from jobs.backends.local import LocalBackend, LocalSettings

        settings = LocalSettings.from_environment(
            stack,
            backup_dir=getattr(args, "backup_dir", None),
            bucket=getattr(args, "s3_bucket", None),
            endpoint_url=getattr(args, "s3_endpoint_url", None),
        )
        backend: Backend = LocalBackend(settings, stack)
        return Target(backend, stack, args.stack or "local", _database(args, stack))
    if stack is None:
        raise PgBackupError(
            "no stack named",
            "pass --stack STACK (Pulumi.STACK.yaml names the namespace), or --local",
            ExitCode.USAGE,
        )
    from jobs.backends.kubernetes import KubernetesBackend

    backend = KubernetesBackend(stack, kubeconfig=args.kubeconfig, context=args.context)
    return Target(backend, stack, stack.name, _database(args, stack))
