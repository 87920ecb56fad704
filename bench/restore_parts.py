"""What our restore does that the limit's does not, each part timed apart in the same run.

restore.sh and the limit load the same data with the same `pg_restore -j`. Ours also checks the
set's sha256 before anything is touched, decompresses the data files (the limit reads them
uncompressed) and counts every table's rows against the manifest. Each part runs here alone,
with the shipped functions where there is one, and is charged with its CPU. On 2 cores kept busy
by the load, a part's CPU-seconds lengthen the restore by about half as many seconds, so their
sum, set beside ours minus the limit, shows how much of the gap they explain.
"""

from __future__ import annotations

import shlex

from bench.context import BenchContext
from bench.pipelines import OursBackup, drop_databases, limit_dump_path
from bench.timing import Measurement, Pipeline, run_rounds, run_shell

# The counts run on a fresh copy loaded by pg_restore alone: its pages hinted by the index builds,
# not yet all-visible, as in the database restore.sh has just loaded.
COUNTED_DB = "bench_parts_counted"


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
    """The check's count(*) of every table. Its first scan of freshly loaded rows also sets their
    hint bits, which an index build would set otherwise: this copy's are set, so what is timed is
    what counting adds."""
    row = Measurement(
        "part_row_counts", "count(*) of every table, as the check counts, on a fresh copy", "part"
    )
    script = (
        f"source {ctx.script('common.sh')} && source {ctx.script('pg.sh')} && "
        f'{ctx.psql_cmd(COUNTED_DB)} -At -c "$(tables_sql exact)" > /dev/null'
    )
    return Pipeline(row, lambda: run_shell(script, ctx.tool_env(), "the row counts"))


def _load_counted_copy(ctx: BenchContext) -> None:
    drop_databases(ctx, COUNTED_DB)
    run_shell(
        f"createdb {COUNTED_DB} && pg_restore -j{ctx.jobs} -d {COUNTED_DB} {limit_dump_path(ctx)}"
        " && psql -X -q -c CHECKPOINT",
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
    if files:
        parts.insert(1, _decompression(ctx, [shlex.quote(f) for f in files]))
    _load_counted_copy(ctx)
    try:
        run_rounds(parts, count, ctx.pg.data)
    finally:
        drop_databases(ctx, COUNTED_DB)
        ctx.pg.psql("CHECKPOINT")
    return [part.row for part in parts]


def summary(rows: dict[str, Measurement], parts: list[Measurement]) -> dict[str, float | None]:
    """Ours minus the limit (seconds, CPU-seconds) beside the CPU-seconds of the parts."""
    ours, limit = rows.get("ours_restore"), rows.get("limit_restore")

    def minus(a: float | None, b: float | None) -> float | None:
        return a - b if a is not None and b is not None else None

    part_cpu = [part.cpu_seconds for part in parts]
    return {
        "ours_minus_limit_s": minus(ours.seconds, limit.seconds) if ours and limit else None,
        "ours_minus_limit_cpu_s": (
            minus(ours.cpu_seconds, limit.cpu_seconds) if ours and limit else None
        ),
        "parts_cpu_s": (
            None if not parts or None in part_cpu else sum(c for c in part_cpu if c is not None)
        ),
    }


def summary_line(found: dict[str, float | None]) -> str:
    def shown(value: float | None) -> str:
        return f"{value:.1f}" if value is not None else "–"

    return (
        f"  ours minus the limit: {shown(found['ours_minus_limit_s'])} s, "
        f"{shown(found['ours_minus_limit_cpu_s'])} CPU-s; "
        f"the parts above: {shown(found['parts_cpu_s'])} CPU-s "
        "(the rest: pipes, round trips, the side database and the swap)"
    )
