"""`pgbackup render --stack STACK --out DIR`: the stack's resources as files, without a cloud."""

from __future__ import annotations

import argparse
from pathlib import Path

from jobs.errors import ExitCode, PgBackupError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "render",
        help="write the stack's Kubernetes manifests and AWS resources as YAML (offline)",
        description="Run the Pulumi program for a stack under Pulumi's mock runtime and write "
        "kubernetes/*.yaml, aws/*.yaml and exports.yaml, like `helm template`.",
    )
    # Also accepted after the command; the global --stack works too.
    parser.add_argument("--stack", "-s", default=argparse.SUPPRESS, help="stack name")
    parser.add_argument("--out", "-o", help="output folder (default: build/render/<stack>)")
    parser.add_argument(
        "--project-dir",
        type=Path,
        help="folder with Pulumi.yaml and the stack files (default: this project)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not args.stack:
        raise PgBackupError(
            "no stack given",
            "pass --stack staging (or another Pulumi.<stack>.yaml)",
            ExitCode.USAGE,
        )
    from infra.render import render

    out = Path(args.out or f"build/render/{args.stack}")
    files = render(args.stack, out, project_dir=args.project_dir)
    kube = sum(1 for f in files if f.parent.name == "kubernetes")
    cloud = sum(1 for f in files if f.parent.name == "aws")
    print(f"rendered stack {args.stack}: {kube} Kubernetes objects, {cloud} AWS resources -> {out}")
    return int(ExitCode.OK)
