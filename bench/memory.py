"""Memory of our steps, for the CronJob's requests and limits: one untimed run of backup.sh and
of restore.sh (into a new database), keeping the largest resident set of any process they start.
The database server's own memory is not the pod's: only the client tools run in the pod."""

from __future__ import annotations

from bench.context import BenchContext
from bench.pipelines import drop_databases, script_missing
from bench.timing import peak_rss_kib


def measure(ctx: BenchContext, backup_id: str) -> dict[str, object]:
    missing = script_missing(ctx, "backup.sh") or script_missing(ctx, "restore.sh")
    if missing or not backup_id:
        return {"note": missing or "no backup set"}
    target = f"{ctx.database}_memory"
    backup = peak_rss_kib(f"bash {ctx.script('backup.sh')}", ctx.script_env())
    restore = peak_rss_kib(
        f"bash {ctx.script('restore.sh')}",
        ctx.script_env(BACKUP_ID=backup_id, TARGET_DATABASE=target),
    )
    drop_databases(ctx, target)
    return {"backup_peak_process_kib": backup, "restore_peak_process_kib": restore}
