"""What non-durable settings gain for a restore into a brand-new server (disaster recovery only).

Two fresh servers, identical but for durability: restore.sh restores the same set into each with
`TARGET_DATABASE`. The non-durable server's time includes turning fsync back on and flushing
everything to disk (`CHECKPOINT` then `sync`): that work is deferred, not saved, and a DR restore
is not done until it is durable. Never do this on a live server: a crash loses the cluster.
"""

from __future__ import annotations

from dataclasses import replace

from bench.context import BenchContext
from bench.pipelines import run_restore_script, script_missing
from bench.timing import Measurement, repeat, run_shell
from jobs.local.postgres import LocalPostgres

DURABLE_CONF = "fsync = on\nsynchronous_commit = on\nfull_page_writes = on\n"
# As CloudNativePG does for imports into a new cluster: no fsync, no full-page images, minimal WAL.
NON_DURABLE_CONF = (
    "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
    "wal_level = minimal\nmax_wal_senders = 0\nmax_wal_size = '8GB'\nautovacuum = off\n"
)


def _restore_into_new_server(
    ctx: BenchContext, backup_id: str, conf: str, row: Measurement, count: int, flush: bool
) -> None:
    server = LocalPostgres().init(extra_conf=conf)
    server.start()
    target = replace(ctx, pg=server)  # the set stays where backup.sh wrote it
    database = f"{ctx.database}_dr"  # the set is found under the source database's name

    def step() -> None:
        run_restore_script(target, ctx.database, backup_id, TARGET_DATABASE=database)
        if flush:
            server.psql("ALTER SYSTEM SET fsync = on")
            server.psql("ALTER SYSTEM SET synchronous_commit = on")
            server.psql("SELECT pg_reload_conf()")
            server.psql("CHECKPOINT")
            run_shell("sync", target.tool_env("postgres"), "sync")

    def reset() -> None:
        server.psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        if flush:
            server.psql("ALTER SYSTEM RESET fsync")
            server.psql("ALTER SYSTEM RESET synchronous_commit")
            server.psql("SELECT pg_reload_conf()")
        server.psql("CHECKPOINT")

    try:
        repeat(row, count, step, before=reset, server_data=server.data)
    finally:
        server.destroy()


def measure(ctx: BenchContext, backup_id: str, count: int) -> list[Measurement]:
    durable = Measurement(
        "dr_restore_durable", "restore.sh into a brand-new server, durable settings", "restore"
    )
    fast = Measurement(
        "dr_restore_non_durable",
        "restore.sh into a brand-new server: fsync/full_page_writes off, wal_level minimal, "
        "then fsync on + CHECKPOINT + sync",
        "restore",
    )
    missing = script_missing(ctx, "restore.sh") or (None if backup_id else "no backup set")
    if missing:
        durable.note = fast.note = missing
        return [durable, fast]
    _restore_into_new_server(ctx, backup_id, DURABLE_CONF, durable, count, flush=False)
    _restore_into_new_server(ctx, backup_id, NON_DURABLE_CONF, fast, count, flush=True)
    return [durable, fast]
