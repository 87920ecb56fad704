"""What our restore does that the limit's does not, each part timed apart in the same run.

restore.sh and the limit load the same data with the same `pg_restore -j`. Ours also checks the
set's sha256 before anything is touched, decompresses the data files (the limit reads them
uncompressed) and counts every table's rows against the manifest. Each part runs here alone,
with the shipped functions where there is one, and is charged with its CPU. The sha256 check runs
before the load and adds its whole time; the other parts overlap the load, on cores it keeps
mostly busy, so they lengthen the restore by about half their CPU-seconds on 2 cores. Their sum,
set beside ours minus the limit (paired round by round), shows how much of the gap they explain.
"""

from __future__ import annotations

import shlex
import shutil
import statistics

from bench.context import BenchContext
from bench.pipelines import OursBackup, drop_databases, limit_restore_script
from bench.timing import Measurement, Pipeline, run_rounds, run_shell

# The counts run on a copy pg_restore has just loaded: its pages hinted by the index builds (the
# first scan of fresh rows sets the hints, which an index build would set anyway) and not
# all-visible, as in the database restore.sh has just loaded. Autovacuum is kept off it, so no
# round finds it vacuumed (cheaper to count) and no part is charged with the vacuum.
COUNTED_DB = "bench_parts_counted"
AUTOVACUUM_OFF = """DO $$
DECLARE t regclass;
BEGIN
  FOR t IN SELECT c.oid::regclass FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') LOOP
    EXECUTE format('ALTER TABLE %s SET (autovacuum_enabled = off)', t);
  END LOOP;
END $$"""


def _checksums(ctx: BenchContext, set_path: str) -> Pipeline:
    row = Measurement(
        "part_checksums", "sha256 check of the set (check_sums, before anything is touched)", "part"
    )
    script = f"source {ctx.script('common.sh')} && check_sums {set_path} > /dev/null"
    return Pipeline(row, lambda: run_shell(script, ctx.script_env(), "check_sums"))


def _decompression(ctx: BenchContext, files: list[str]) -> Pipeline:
    row = Measurement(
        "part_decompression",
        "zstd -d of the data files to /dev/null (restore.sh streams them through pipes)",
        "part",
    )
    script = f"zstd -q -d -c -- {' '.join(files)} > /dev/null"
    return Pipeline(row, lambda: run_shell(script, ctx.tool_env(), "zstd -d"))


def _row_counts(ctx: BenchContext) -> Pipeline:
    """The check's count(*) of every table, in one process as the row counter counts."""
    row = Measurement(
        "part_row_counts",
        "count(*) of every table, one process, on a copy pg_restore has just loaded",
        "part",
    )
    script = (
        f"source {ctx.script('common.sh')} && source {ctx.script('pg.sh')} && "
        f"{ctx.psql_cmd(COUNTED_DB)} -At -c 'SET max_parallel_workers_per_gather = 0' "
        '-c "$(tables_sql exact)" > /dev/null'
    )
    return Pipeline(row, lambda: run_shell(script, ctx.tool_env(), "the row counts"))


def _load_counted_copy(ctx: BenchContext) -> None:
    drop_databases(ctx, COUNTED_DB)
    autovacuum_off = shlex.quote(AUTOVACUUM_OFF)
    run_shell(
        f"{limit_restore_script(ctx, COUNTED_DB)} && "
        f"psql -X -q -v ON_ERROR_STOP=1 -d {COUNTED_DB} -c {autovacuum_off} -c CHECKPOINT",
        ctx.tool_env("postgres"),
        "the copy to count",
    )


def measure(ctx: BenchContext, backup: OursBackup, count: int) -> list[Measurement]:
    """The parts, `count` interleaved rounds, against the set the backup rows left."""
    if not backup.backup_id:
        return []
    set_path = ctx.backup_dir / backup.database / backup.backup_id
    files = sorted(str(path) for path in (set_path / "dump").glob("*.dat.zst"))
    parts = [_checksums(ctx, shlex.quote(str(set_path))), _row_counts(ctx)]
    if files and shutil.which("zstd"):
        parts.insert(1, _decompression(ctx, [shlex.quote(f) for f in files]))
    _load_counted_copy(ctx)
    try:
        run_rounds(parts, count, ctx.pg.data)
    finally:
        drop_databases(ctx, COUNTED_DB)
        ctx.pg.psql("CHECKPOINT")
    return [part.row for part in parts]


def _paired_median(ours: list[float], limit: list[float]) -> float | None:
    """The median of ours minus the limit, round by round (the rows run in the same rounds)."""
    pairs = [a - b for a, b in zip(ours, limit, strict=False)]
    return statistics.median(pairs) if pairs else None


def _cpu_totals(row: Measurement) -> list[float]:
    """Each run's CPU-seconds, server and clients; none when a run lacks the server's."""
    totals = [run.server + run.client for run in row.cpu if run.server is not None]
    return totals if len(totals) == len(row.cpu) else []


def summary(rows: dict[str, Measurement], parts: list[Measurement]) -> dict[str, float | None]:
    """Ours minus the limit (seconds, CPU-seconds) beside the CPU-seconds of the parts."""
    ours, limit = rows.get("ours_restore"), rows.get("limit_restore")
    gap_s = gap_cpu = parts_cpu = rest_cpu = None
    if ours and limit:
        gap_s = _paired_median(ours.runs, limit.runs)
        gap_cpu = _paired_median(_cpu_totals(ours), _cpu_totals(limit))
    part_cpu = [part.cpu_seconds for part in parts]
    if parts and None not in part_cpu:
        parts_cpu = sum(c for c in part_cpu if c is not None)
    if gap_cpu is not None and parts_cpu is not None:
        rest_cpu = gap_cpu - parts_cpu
    return {
        "ours_minus_limit_s": gap_s,
        "ours_minus_limit_cpu_s": gap_cpu,
        "parts_cpu_s": parts_cpu,
        "rest_cpu_s": rest_cpu,
    }


def summary_line(found: dict[str, float | None]) -> str:
    def shown(value: float | None) -> str:
        return f"{value:.1f}" if value is not None else "–"

    return (
        f"  ours minus the limit (median of the rounds): {shown(found['ours_minus_limit_s'])} s, "
        f"{shown(found['ours_minus_limit_cpu_s'])} CPU-s; the parts above: "
        f"{shown(found['parts_cpu_s'])} CPU-s; the rest (pipes, round trips, the side database, "
        f"the swap): {shown(found['rest_cpu_s'])} CPU-s"
    )
