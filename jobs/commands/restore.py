"""`pgbackup restore ID|latest`: the guarded restore. The app is down only for the swap.

Plan -> typed confirmation -> fresh backup -> restore into a side database while the app keeps
serving -> record the app's replicas, scale to 0, swap, scale back to the recorded counts (also
when the swap fails) -> the guide's post-restore checks.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass

from jobs import ui
from jobs.backends import Target, add_local_options, open_backend, steps
from jobs.backends.base import WHERES, Backend, PreparedRestore, RestoreResult, Where
from jobs.errors import ExitCode, PgBackupError
from jobs.stack import load_stack

NAME_LIMIT = 63  # PostgreSQL truncates identifiers at 63 bytes
PLAIN_NAME = re.compile(r"^[a-z_][a-z0-9_$]*$")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "restore",
        help="restore a set: side database, then a short swap (asks for the database name)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "backup_id", metavar="BACKUP_ID", help="a set's id, latest, or a legacy *.sql.gz file name"
    )
    parser.add_argument(
        "--from",
        dest="where",
        choices=WHERES,
        default="volume",
        help="where the set is (offsite: fetched onto the volume first)",
    )
    parser.add_argument("--database", "-d", help="which database (default: the stack's only one)")
    parser.add_argument(
        "--to",
        dest="to_db",
        metavar="NEW_DB",
        help="restore into this new database instead: no swap, app untouched",
    )
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask for the database name")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    parser.add_argument(
        "--skip-fresh-backup",
        action="store_true",
        help="do not back up the live database first (you accept losing it)",
    )
    parser.add_argument(
        "--source-stack",
        metavar="OTHER",
        help="restore another stack's offsite set (needs crossStackRead)",
    )
    parser.add_argument("--source-database", help="the set's database in the other stack")
    add_local_options(parser)
    parser.set_defaults(run=run)


# -- what the other stack's database is called ---------------------------------------------------
def source_database(target: Target, source_stack: str, explicit: str | None = None) -> str:
    """The database name the other stack's sets are filed under: --source-database, else the
    other stack's file (its database at our database's position), else the only one offsite."""
    if target.stack is None:
        raise PgBackupError(
            f"--source-stack {source_stack} needs this stack's crossStackRead config",
            "pass --stack with the stack that restores",
            ExitCode.CONFIG,
        )
    grant = target.stack.grant_for(source_stack)
    if explicit:
        return explicit
    try:
        other = load_stack(source_stack)
    except PgBackupError:
        other = None
    if other is not None and other.databases:
        ours = [d.name for d in target.stack.databases]
        index = ours.index(target.database) if target.database in ours else 0
        return other.databases[min(index, len(other.databases) - 1)].name
    from jobs.backends.offsite import OffsiteStore

    store = OffsiteStore(grant.bucket, grant.prefix, target.stack.endpoint_url)
    names = sorted({s.database for s in store.list_sets(None)})
    if len(names) == 1:
        return names[0]
    raise PgBackupError(
        f"cannot tell which database of stack {source_stack} to restore "
        f"(offsite: {', '.join(names) or 'none'})",
        "name it with --source-database",
        ExitCode.USAGE,
    )


# -- the plan -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    database: str
    backup_id: str
    where: Where
    target_db: str | None
    source_stack: str | None
    source_db: str
    fresh_backup: bool
    replicas: dict[str, int]

    @property
    def side(self) -> str:
        return self.target_db or steps.side_name(self.database, self.backup_id)

    @property
    def kept(self) -> str:
        return steps.kept_name(self.database, self.backup_id)


def print_plan(plan: Plan, target: Target) -> None:
    origin = f"stack {plan.source_stack}, " if plan.source_stack else ""
    ui.out(ui.paint("=== Restore plan ===", "bold"))
    ui.out(f"Stack:      {target.stack_name} ({target.backend.stack_label})")
    ui.out(f"Database:   {plan.database}")
    ui.out(f"Backup:     {plan.source_db}/{plan.backup_id} ({origin}{plan.where})")
    steps = []
    if plan.where == "offsite":
        steps.append(f"fetch {plan.backup_id} from offsite onto the volume, checksums verified")
    if plan.target_db:
        steps.append(f"restore into the new database {plan.target_db} and check it")
        steps.append(f"{plan.database} and the app are not touched; nothing is swapped")
    else:
        if plan.fresh_backup:
            steps.append(f"take a fresh backup of {plan.database}")
        else:
            steps.append(
                ui.paint(f"NO fresh backup of {plan.database} (--skip-fresh-backup)", "red")
            )
        steps.append(
            f"restore into the side database {plan.side} and check it (the app keeps serving)"
        )
        apps = ", ".join(f"{n} ({c} replicas)" for n, c in plan.replicas.items()) or "none"
        steps.append(f"scale the app to 0: {apps}")
        steps.append(f"swap: {plan.database} -> {plan.kept} (kept), {plan.side} -> {plan.database}")
        steps.append("scale the app back to the recorded replicas (also if the swap fails)")
    for number, text in enumerate(steps, 1):
        ui.out(f"  {number}. {text}")
    ui.out("")


# -- the swap window -----------------------------------------------------------------------------
def swap_with_app_down(
    backend: Backend, prepared: PreparedRestore, replicas: dict[str, int]
) -> tuple[RestoreResult, float]:
    """Scale the app to 0, swap, and always scale it back to `replicas`. Returns the result and
    the seconds the app was down."""
    started = time.monotonic()
    failure: BaseException | None = None
    try:
        if replicas:
            with ui.step("scaling the app to 0: " + ", ".join(replicas)):
                backend.scale_app({name: 0 for name in replicas})
        with ui.step(f"swapping {prepared.side_database} in as {prepared.database}"):
            result = backend.restore_swap(prepared)
        return result, time.monotonic() - started
    except BaseException as error:
        failure = error
        raise
    finally:
        if replicas:
            try:
                with ui.step(
                    "scaling the app back: " + ", ".join(f"{n}={c}" for n, c in replicas.items())
                ):
                    backend.scale_app(replicas)
            except PgBackupError as error:
                counts = " ".join(f"{n}={c}" for n, c in replicas.items())
                print(
                    f"pgbackup: could not scale the app back ({error.message}); "
                    f"scale it by hand to {counts}",
                    file=sys.stderr,
                )
                if failure is None:
                    raise


def print_checks(
    plan: Plan, result: RestoreResult | None, target: Target, fresh_id: str, downtime: float | None
) -> None:
    ui.out("")
    ui.out(ui.paint("=== Restore Completed ===", "bold"))
    ui.out(f"Database:       {plan.target_db or plan.database}")
    ui.out(
        f"Restored from:  {plan.source_db}/{plan.backup_id}"
        + (f" (stack {plan.source_stack})" if plan.source_stack else "")
    )
    if result is not None:
        ui.out(f"Previous data:  kept as {result.kept_database}")
    if fresh_id:
        ui.out(f"Fresh backup:   {fresh_id} (taken just before)")
    if downtime is not None:
        ui.out(f"App down for:   {downtime:.1f} s (the swap)")
    ui.out("")
    ui.out("Post-restore checks:")
    stack = target.stack
    name = plan.target_db or plan.database
    checks: list[str] = []
    if stack is not None and not isinstance_local(target):
        ns = stack.namespace
        checks += [f"kubectl -n {ns} rollout status deployment/{d}" for d in stack.app_deployments]
        checks.append("check the app's health endpoint (e.g. /api/health/ready)")
        checks += [f"kubectl -n {ns} logs deployment/{d} --tail=100" for d in stack.app_deployments]
    else:
        checks.append(f"psql -d {name} -c 'SELECT 1'")
        checks.append("check the app's health endpoint")
    checks.append("test the critical user flows (login, create a test, ...)")
    for number, check in enumerate(checks, 1):
        ui.out(f"  {number}. {check}")
    if result is not None:
        again = f"pgbackup --stack {target.stack_name} " if target.stack else "pgbackup "
        local = "--local " if isinstance_local(target) else ""
        if fresh_id:
            ui.out(f"To go back to the data from before: {again}{local}restore {fresh_id}")
        ui.out(f"When satisfied, drop {result.kept_database} to free its space.")


def isinstance_local(target: Target) -> bool:
    return target.backend.stack_label.startswith("local")


# -- the command --------------------------------------------------------------------------------
def _check_new_name(name: str, live: str) -> None:
    if len(name.encode()) > NAME_LIMIT or not PLAIN_NAME.match(name):
        raise PgBackupError(
            f"--to {name!r} is not a plain PostgreSQL name of at most {NAME_LIMIT} bytes",
            "use lowercase letters, digits and underscores",
            ExitCode.USAGE,
        )
    if name == live:
        raise PgBackupError(
            f"--to {name} is the live database",
            "drop --to to replace it (side database and swap), or pick a new name",
            ExitCode.USAGE,
        )


def run(args: argparse.Namespace) -> int:
    target = open_backend(args)
    backend, database = target.backend, target.database
    where: Where = args.where
    source_db = database
    if args.source_stack:
        source_db = source_database(target, args.source_stack, args.source_database)
        where = "offsite"
    if args.to_db:
        _check_new_name(args.to_db, database)
    backup_id = backend.resolve(source_db, args.backup_id, where, args.source_stack)
    replicas = {} if args.to_db else backend.app_replicas()
    plan = Plan(
        database,
        backup_id,
        where,
        args.to_db,
        args.source_stack,
        source_db,
        fresh_backup=not (args.skip_fresh_backup or args.to_db),
        replicas=replicas,
    )
    print_plan(plan, target)
    if args.dry_run:
        ui.out("Dry run: nothing was changed.")
        return 0
    ui.confirm_typed(args.to_db or database, args.yes, f"restoring {database}")

    if where == "volume" and not backup_id.endswith(".sql.gz"):
        # A damaged set is refused before the fresh backup and anything else is done.
        # (An offsite set is checked by the fetch, before anything is touched too.)
        with ui.step(f"verifying {source_db}/{backup_id}"):
            checked = backend.verify(source_db, backup_id, "volume")
        if not checked.ok:
            raise PgBackupError(
                f"set {backup_id} of {source_db} did not verify ({checked.detail})",
                "choose another set (pgbackup list) or fetch this one again from offsite",
                ExitCode.CORRUPT,
            )
    fresh_id = ""
    if plan.fresh_backup:
        with ui.step(f"fresh backup of {database}"):
            fresh_id = backend.run_backup(database, keep_all=True).id
    if where == "offsite":
        with ui.step(f"fetching {source_db}/{backup_id} from offsite"):
            backend.fetch(
                database, backup_id, args.source_stack, source_db if source_db != database else None
            )
    with ui.step(f"restoring {backup_id} into {plan.side} (the app keeps serving)"):
        prepared = backend.restore_prepare(
            database,
            backup_id,
            args.to_db,
            source_db if source_db != database else None,
            args.source_stack,
        )
    if args.to_db:
        print_checks(plan, None, target, fresh_id, None)
        return 0
    # Read again now: the prepare may have taken hours, and an autoscaler or a rollout may have
    # changed the counts the plan showed. These are the counts the app gets back.
    result, downtime = swap_with_app_down(backend, prepared, backend.app_replicas())
    print_checks(plan, result, target, fresh_id, downtime)
    return 0
