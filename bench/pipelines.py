"""The rows of the table: the guide's pipelines, ours as shipped (the scripts), and the limits.

Each function returns a `Pipeline` (see timing.py) that `run_rounds` times against the server in
`ctx`. Untimed set-up between runs puts the ground back (drops what the last run made); backups
leave their last output in place for the restore rows.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bench.context import BenchContext
from bench.timing import Measurement, Pipeline, run_shell, tree_bytes
from jobs.errors import PgBackupError

GUIDE_RESTORE_DB = "bench_guide_restore"
LIMIT_RESTORE_DB = "bench_limit_restore"


def reset_path(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def drop_databases(ctx: BenchContext, *names: str) -> None:
    for name in names:
        ctx.pg.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def summary_line(stdout: str, script: str) -> dict[str, object]:
    """The one-line JSON summary a script prints last on stdout (the contract)."""
    lines = [line for line in stdout.strip().splitlines() if line.startswith("{")]
    if not lines:
        raise PgBackupError(
            f"{script} printed no JSON summary line", "check the script's stdout contract"
        )
    summary: dict[str, object] = json.loads(lines[-1])
    return summary


def _untimed(row: Measurement, note: str) -> Pipeline:
    """A row that cannot run here (a missing tool or script): kept in the table, with the reason."""
    row.note = note
    return Pipeline(row, step=lambda: None, before=None, after=None, results=[])


# -- the guide ------------------------------------------------------------------------------
def guide_dump_path(ctx: BenchContext) -> Path:
    return ctx.workdir / "guide" / "backup.sql.gz"


def guide_backup(ctx: BenchContext) -> Pipeline:
    target = guide_dump_path(ctx)
    target.parent.mkdir(parents=True, exist_ok=True)
    row = Measurement("guide_backup", "the guide: pg_dump | gzip > file", "backup")
    script = f"pg_dump | gzip > {target}"

    def after(_: list[object]) -> None:
        row.bytes = tree_bytes(target)

    return Pipeline(
        row, lambda: run_shell(script, ctx.tool_env(), "the guide's backup"), after=after
    )


def pigz_backup(ctx: BenchContext) -> Pipeline:
    row = Measurement("pigz_backup", f"pigz style: pg_dump | pigz -p{ctx.jobs} > file", "backup")
    if shutil.which("pigz") is None:
        return _untimed(row, "pigz not installed (apt-get install pigz): not measured")
    target = ctx.workdir / "pigz" / "backup.sql.gz"
    target.parent.mkdir(parents=True, exist_ok=True)
    script = f"pg_dump | pigz -p{ctx.jobs} > {target}"

    def after(_: list[object]) -> None:
        row.bytes = tree_bytes(target)
        reset_path(target)

    return Pipeline(
        row, lambda: run_shell(script, ctx.tool_env(), "the pigz-style backup"), after=after
    )


def guide_restore(ctx: BenchContext) -> Pipeline:
    """The guide's procedure: drop, recreate, `gunzip -c | psql` (the app is down throughout)."""
    row = Measurement("guide_restore", "the guide: drop, create, gunzip -c | psql", "restore")
    db = GUIDE_RESTORE_DB
    script = (
        f"dropdb --if-exists {db} && createdb {db} && "
        f"gunzip -c {guide_dump_path(ctx)} | {ctx.psql_cmd(db)} > /dev/null"
    )
    return Pipeline(
        row,
        lambda: run_shell(script, ctx.tool_env("postgres"), "the guide's restore"),
        before=lambda: quiet_restore_ground(ctx, ctx.database),
        after=lambda _: quiet_restore_ground(ctx, ctx.database),
    )


# -- ours, as shipped -----------------------------------------------------------------------
def script_missing(ctx: BenchContext, name: str) -> str | None:
    path = ctx.script(name)
    return None if path.exists() else f"{path} not found: not measured"


def run_backup_script(ctx: BenchContext, database: str) -> dict[str, object]:
    done = run_shell(
        f"bash {ctx.script('backup.sh')}",
        ctx.script_env(PGDATABASE=database),
        f"backup.sh of {database}",
    )
    return summary_line(done.stdout, "backup.sh")


class OursBackup:
    """backup.sh as shipped (dump, globals, verification, manifest, retention). Each run starts
    from an empty folder for the database; the last set stays for the restore rows."""

    def __init__(self, ctx: BenchContext, database: str | None = None) -> None:
        self.ctx = ctx
        self.database = database or ctx.database
        self.backup_id = ""
        self.row = Measurement("ours_backup", "ours: backup.sh (shipped defaults)", "backup")

    def pipeline(self) -> Pipeline:
        missing = script_missing(self.ctx, "backup.sh")
        if missing:
            return _untimed(self.row, missing)
        sets = self.ctx.backup_dir / self.database
        self.ctx.backup_dir.mkdir(parents=True, exist_ok=True)
        return Pipeline(
            self.row,
            lambda: run_backup_script(self.ctx, self.database),
            before=lambda: reset_path(sets),
            after=self._record,
        )

    def _record(self, results: list[object]) -> None:
        summary = results[-1]
        assert isinstance(summary, dict)
        self.backup_id = str(summary["id"])
        set_path = Path(
            str(summary.get("path") or self.ctx.backup_dir / self.database / self.backup_id)
        )
        self.row.bytes = tree_bytes(set_path) if set_path.exists() else int(summary["bytes"])
        self.row.note = f"set {self.backup_id}, compression {summary.get('compression', '?')}"


def run_restore_script(
    ctx: BenchContext, database: str, backup_id: str, **extra: str
) -> dict[str, object]:
    done = run_shell(
        f"bash {ctx.script('restore.sh')}",
        ctx.script_env(PGDATABASE=database, BACKUP_ID=backup_id, **extra),
        f"restore.sh of {database} ({extra or 'all steps'})",
    )
    return summary_line(done.stdout, "restore.sh")


def clear_restore_leftovers(ctx: BenchContext, database: str) -> None:
    """The swap keeps the replaced database (never dropped by the script): drop it, and any side
    database a failed run left."""
    names = ctx.pg.psql(
        f"SELECT datname FROM pg_database WHERE datname LIKE '{database}\\_\\_%'"  # noqa: S608
    ).split()
    drop_databases(ctx, *names)


def put_original_back(ctx: BenchContext, database: str) -> None:
    """After a swap, drop the restored database and rename the one it replaced back."""
    kept = ctx.pg.psql(
        f"SELECT datname FROM pg_database WHERE datname LIKE '{database}\\_\\_pre\\_restore\\_%'"  # noqa: S608
    ).split()
    if len(kept) == 1:
        drop_databases(ctx, database)
        ctx.pg.psql(f'ALTER DATABASE "{kept[0]}" RENAME TO "{database}"')
    clear_restore_leftovers(ctx, database)


def quiet_restore_ground(ctx: BenchContext, database: str) -> None:
    """Before each restore run, whichever row it is: no restored copy left by any row, the
    original database in place, every dirty page written. Otherwise the copy the last run loaded
    stays, and autovacuum's first pass over it (hint bits, visibility map: a write of every page)
    and the checkpoint of its writes run during the next row's time. The guide's timed drop then
    finds nothing to drop, in every round alike."""
    drop_databases(ctx, GUIDE_RESTORE_DB, LIMIT_RESTORE_DB)
    put_original_back(ctx, database)
    ctx.pg.psql("CHECKPOINT")


def ours_restore(ctx: BenchContext, backup: OursBackup) -> Pipeline:
    """restore.sh as shipped: verification, side database, checks, swap."""
    row = Measurement("ours_restore", "ours: restore.sh (verify, side db, checks, swap)", "restore")
    missing = script_missing(ctx, "restore.sh") or (
        None if backup.backup_id else "no backup set to restore"
    )
    if missing:
        return _untimed(row, missing)
    database = backup.database
    return Pipeline(
        row,
        lambda: run_restore_script(ctx, database, backup.backup_id),
        before=lambda: quiet_restore_ground(ctx, database),
        after=lambda _: quiet_restore_ground(ctx, database),
    )


# -- the limits -----------------------------------------------------------------------------
def limit_dump_serial(ctx: BenchContext) -> Pipeline:
    row = Measurement("limit_dump_serial", "limit: pg_dump -Fc -Z0 > /dev/null", "limit")
    script = "pg_dump -Fc -Z0 > /dev/null"
    return Pipeline(row, lambda: run_shell(script, ctx.tool_env(), "pg_dump -Fc -Z0"))


def limit_dump_path(ctx: BenchContext) -> Path:
    return ctx.workdir / "limit" / "dump"


def limit_dump_parallel(ctx: BenchContext) -> Pipeline:
    row = Measurement(
        "limit_dump_parallel", f"limit: pg_dump -Fd -j{ctx.jobs} -Z0 (uncompressed)", "limit"
    )
    target = limit_dump_path(ctx)
    target.parent.mkdir(parents=True, exist_ok=True)
    script = f"pg_dump -Fd -j{ctx.jobs} -Z0 -f {target}"

    def after(_: list[object]) -> None:
        row.bytes = tree_bytes(target)

    return Pipeline(
        row,
        lambda: run_shell(script, ctx.tool_env(), "pg_dump -Fd -Z0"),
        before=lambda: reset_path(target),
        after=after,
    )


def limit_restore_script(ctx: BenchContext, db: str) -> str:
    """The limit's restore: a new database, then pg_restore -j of the uncompressed dump."""
    return f"createdb {db} && pg_restore -j{ctx.jobs} -d {db} {limit_dump_path(ctx)}"


def limit_restore(ctx: BenchContext) -> Pipeline:
    row = Measurement(
        "limit_restore",
        f"limit: createdb + pg_restore -j{ctx.jobs} of the uncompressed directory dump",
        "limit",
    )
    script = limit_restore_script(ctx, LIMIT_RESTORE_DB)
    return Pipeline(
        row,
        lambda: run_shell(script, ctx.tool_env("postgres"), "pg_restore -j"),
        before=lambda: quiet_restore_ground(ctx, ctx.database),
        after=lambda _: quiet_restore_ground(ctx, ctx.database),
    )
