"""`pgbackup dr-rebuild --stack STACK --kubeconfig NEW_CLUSTER`: the guide's "entire cluster lost".

With the Pulumi Automation API: select the stack, point its Kubernetes provider at the new cluster
(`pgbackup:kubeconfig`, a secret), `pulumi up`; hold the app at 0 replicas; wait until PostgreSQL
accepts connections; fetch the newest verified offsite set from before the loss (`--since`) with
the read-only role; restore;
verify; give the app its replicas back; print the timeline with the RTO achieved (target 1 h) and
the RPO (target 24 h), and the DNS step.

Resume: every finished step is recorded in the state file (default
`~/.local/state/pgbackup/dr-<stack>.json`, `$XDG_STATE_HOME` honoured, or `--state-file`); a re-run
skips them. `--fresh` starts over. `--dry-run` prints the plan and changes nothing.

Before a disaster: install the `pulumi` CLI and its plugins on the machine that runs this, and keep
the state backend and the secrets provider outside the cluster.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from jobs.dr.flow import print_plan, run_steps
from jobs.dr.kubernetes_target import KubernetesRebuild
from jobs.dr.pulumi_stack import AutomationStack, StackEngine
from jobs.dr.state import RebuildState, default_state_file
from jobs.dr.timeline import outcome, render
from jobs.errors import ExitCode, PgBackupError
from jobs.stack import load_stack, project_dir
from jobs.ui import info, out, parse_time


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dr-rebuild",
        help="rebuild a lost cluster from code and the newest offsite set; prints RTO and RPO",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # Also accepted after the command name (`dr-rebuild --stack s --kubeconfig k`); SUPPRESS keeps
    # the global options' values when they are given before it.
    parser.add_argument("--stack", "-s", default=argparse.SUPPRESS, help="stack to rebuild")
    parser.add_argument(
        "--kubeconfig", default=argparse.SUPPRESS, help="kubeconfig of the NEW cluster"
    )
    parser.add_argument(
        "--database", "-d", help="which configured database (default: the only one)"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    parser.add_argument(
        "--state-file",
        type=Path,
        help="resume state (default: ~/.local/state/pgbackup/dr-<stack>.json)",
    )
    parser.add_argument("--fresh", action="store_true", help="ignore earlier progress, start over")
    parser.add_argument(
        "--since",
        help="when the loss happened (ISO-8601 UTC): the RTO clock's zero "
        "(default: the first run of this rebuild)",
    )
    parser.add_argument("--oidc-issuer", help="the new cluster's OIDC issuer (IRSA trust)")
    parser.add_argument("--oidc-provider-arn", help="the new cluster's IAM OIDC provider ARN")
    parser.add_argument(
        "--dns-name", default="", help="the app's public hostname, for the DNS step of the report"
    )
    parser.set_defaults(run=run)


def _endpoints_probe(core: Any, namespace: str, service: str) -> Any:
    """True once the PostgreSQL Service has a ready endpoint (its readiness probe passed)."""

    def ready() -> bool:
        try:
            endpoints = core.read_namespaced_endpoints(service, namespace)
        except Exception:  # noqa: BLE001 - not there yet, or the API is still settling
            return False
        return any(subset.addresses for subset in (endpoints.subsets or []))

    return ready


def cluster_of(kubeconfig: Path, context: str | None) -> str:
    """The API server the kubeconfig points at (its current context, or `context`): what a resume
    must still be rebuilding. The path itself when the file cannot be read as a kubeconfig."""
    import yaml

    try:
        config = yaml.safe_load(kubeconfig.read_text(encoding="utf-8")) or {}
        name = context or config.get("current-context")
        (cluster,) = [c["context"]["cluster"] for c in config["contexts"] if c["name"] == name]
        (server,) = [c["cluster"]["server"] for c in config["clusters"] if c["name"] == cluster]
        return str(server)
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError):
        return str(kubeconfig)


def held_facts(state_file: Path, stack: str, target: str) -> dict[str, Any]:
    """What an unfinished rebuild of the same stack, database and cluster recorded before it
    held the app and suspended the backups (the app's replica counts, whether backups were
    suspended already), for a fresh start to give back; another cluster's are not this one's."""
    import json

    try:
        data = json.loads(state_file.read_text(encoding="utf-8"))
        if data.get("finished_at") is not None or data.get("stack") != stack:
            return {}
        if data.get("target") not in ("", None, target):
            return {}
        facts = data["facts"]
        held: dict[str, Any] = {}
        if "app_replicas" in facts:
            replicas = facts["app_replicas"]
            held["app_replicas"] = {str(name): int(count) for name, count in replicas.items()}
        if "backups_suspended" in facts:
            held["backups_suspended"] = bool(facts["backups_suspended"])
        return held
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}  # no state, or one that cannot be read: nothing recorded to give back


def build_rebuild(args: argparse.Namespace, engine: StackEngine | None = None) -> KubernetesRebuild:
    """The steps for this command line; nothing is contacted until a step runs."""
    from infra.config import load_stack_config

    stack = load_stack(args.stack)
    config = load_stack_config(args.stack, project_dir())
    database = stack.database(args.database).name
    kubeconfig = Path(args.kubeconfig).expanduser()

    def backend() -> Any:
        from jobs.backends.kubernetes import KubernetesBackend

        return KubernetesBackend(stack, kubeconfig=str(kubeconfig), context=args.context)

    service = config.postgres.host.split(".")[0]
    holder: dict[str, Any] = {}

    def probe() -> bool:
        if "probe" not in holder:
            from jobs.backends.kubernetes import load_apis

            _, _, core = load_apis(str(kubeconfig), args.context)
            holder["probe"] = _endpoints_probe(core, stack.namespace, service)
        return bool(holder["probe"]())

    return KubernetesRebuild(
        stack=args.stack,
        database=database,
        kubeconfig=kubeconfig,
        engine=engine or AutomationStack(args.stack, project_dir()),
        backend_factory=backend,
        ready_probe=probe,
        postgres_label=f"{config.postgres.host}:{config.postgres.port} in {stack.namespace}",
        oidc_issuer=args.oidc_issuer,
        oidc_provider_arn=args.oidc_provider_arn,
    )


def run(args: argparse.Namespace, engine: StackEngine | None = None) -> int:
    if getattr(args, "local", False):
        raise PgBackupError(
            "dr-rebuild rebuilds a cluster; there is no local variant",
            "run `pgbackup demo` to watch the same steps locally, or pass --stack and --kubeconfig",
            ExitCode.USAGE,
        )
    if not getattr(args, "stack", None) or not getattr(args, "kubeconfig", None):
        raise PgBackupError(
            "dr-rebuild needs the stack and the new cluster's kubeconfig",
            "run `pgbackup dr-rebuild --stack STACK --kubeconfig PATH`",
            ExitCode.USAGE,
        )
    rebuild = build_rebuild(args, engine)
    state_file = args.state_file or default_state_file(args.stack)
    since = parse_time(args.since) if args.since else None
    if args.since and since is None:
        raise PgBackupError(
            f"--since {args.since!r} is not a time",
            "use ISO-8601, e.g. 2026-01-19T02:30:00Z",
            ExitCode.USAGE,
        )
    incident = since.timestamp() if since else time.time()
    target = f"{rebuild.database} on {cluster_of(rebuild.kubeconfig, args.context)}"
    held = held_facts(state_file, args.stack, target) if args.fresh else {}
    if args.fresh and state_file.exists() and not args.dry_run:
        state_file.unlink()
    state = (
        RebuildState(path=state_file, stack=args.stack, incident_at=incident, target=target)
        if args.fresh
        else RebuildState.load_or_new(state_file, args.stack, incident, target)
    )
    # An unfinished rebuild held the app and the backups: starting over still gives them back.
    state.facts.update(held)
    if since and since.timestamp() < state.incident_at:
        # The loss happened before this rebuild's first run: the RTO counts from the loss.
        state.incident_at = since.timestamp()
    steps = rebuild.steps()
    if args.dry_run:
        print_plan(steps, state)
        return int(ExitCode.OK)
    if state.steps:
        info(f"resuming the rebuild of {args.stack} from {state_file}")
    else:
        info(f"rebuilding stack {args.stack}; progress is kept in {state_file}")
    # Saved before the first step, so the RTO clock keeps this start even if that step fails.
    state.save()
    run_steps(steps, state)
    dns = (
        f"point {args.dns_name} at the new cluster's ingress address "
        f"(kubectl get ingress -n {rebuild.postgres_label.rsplit(' ', 1)[-1]})"
        if args.dns_name
        else "point the app's hostname at the new cluster's ingress address (kubectl get ingress)"
    )
    out(render(state, dns))
    if not outcome(state).rto_met:
        info("the RTO target was missed: note the slowest step above in the incident review")
    return int(ExitCode.OK)
