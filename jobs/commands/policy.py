"""`pgbackup --stack STACK policy`: review a stack against the policy pack, offline.

Runs the stack's real Pulumi program under Pulumi's mock runtime (no cloud, no credentials) and
evaluates the pack's own rule functions over every declared resource, with the same policy config
file as `pulumi preview --policy-pack policy --policy-pack-config policy/config/<stack>.json`.
Exits 1 when any mandatory rule is violated. "unknown" means a value only known after deployment:
the rule cannot judge it yet.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jobs import ui
from jobs.errors import ExitCode, PgBackupError
from policy.evaluate import (
    Outcome,
    PolicyConfigError,
    config_path,
    evaluate,
    load_policy_config,
    mandatory_failures,
)
from policy.rules import Resource

COLOURS = {"pass": "green", "fail": "red", "warn": "yellow", "unknown": "yellow", "skip": "dim"}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "policy",
        help="review the stack against the policy pack, offline (exit 1 on violations)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # Also accepted after the command (`pgbackup policy --stack production`); SUPPRESS keeps a
    # `--stack` given before the command from being reset.
    parser.add_argument("--stack", "-s", default=argparse.SUPPRESS, help="stack to review")
    parser.add_argument(
        "--policy-config",
        type=Path,
        help="policy config file (default: policy/config/<stack>.json)",
    )
    parser.add_argument(
        "--problems-only",
        action="store_true",
        help="list only failures, warnings and unknowns",
    )
    parser.set_defaults(run=run)


def declared_resources(stack: str, overrides: dict[str, Any] | None = None) -> list[Resource]:
    """The stack's resources as the engine would see them, rendered under the mock runtime."""
    from infra.render import collect_resources  # imported late: it loads Pulumi's runtime

    return [
        Resource(type=d.type, name=d.name, props=d.inputs, urn=d.urn)
        for d in collect_resources(stack, overrides)
        if d.custom  # components are only groupings; the engine analyzes custom resources
    ]


def _policy_config(stack: str, path: Path | None) -> dict[str, Any]:
    path = path or config_path(stack)
    if not path.exists():
        raise PgBackupError(
            f"no policy config for stack {stack!r} at {path}",
            f"create {path} (copy policy/config/staging.json and set this stack's floors)",
            ExitCode.NOT_FOUND,
        )
    try:
        return load_policy_config(path)
    except PolicyConfigError as error:
        raise PgBackupError(
            str(error), "fix the file: keys are policy names", ExitCode.CONFIG
        ) from error


def render_table(outcomes: Sequence[Outcome]) -> str:
    rows = [
        [o.rule, o.resource, ui.paint(o.result.upper().ljust(7), COLOURS[o.result]), o.message]
        for o in outcomes
    ]
    return ui.table(["rule", "resource", "result ", "message"], rows)


def run(args: argparse.Namespace) -> int:
    if not args.stack:
        raise PgBackupError(
            "policy needs a stack", "pass --stack staging (or production)", ExitCode.USAGE
        )
    config = _policy_config(args.stack, args.policy_config)
    with ui.step(f"rendering stack {args.stack} under the mock runtime"):
        resources = declared_resources(args.stack)
    outcomes = evaluate(resources, config)
    shown = (
        [o for o in outcomes if o.result not in ("pass", "skip")]
        if args.problems_only
        else outcomes
    )
    if shown:
        ui.out(render_table(shown))
    counts = {k: sum(o.result == k for o in outcomes) for k in COLOURS}
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    failures = mandatory_failures(outcomes)
    ui.out("")
    if failures:
        ui.out(
            ui.paint(
                f"stack {args.stack}: {len(failures)} mandatory violation(s) ({summary})", "red"
            )
        )
        return int(ExitCode.VIOLATIONS)
    ui.out(ui.paint(f"stack {args.stack}: no mandatory violations ({summary})", "green"))
    return int(ExitCode.OK)
