"""How cost grows: our backup and restore at smaller scales, time per GB, and a projection.

A straight line through the points (least squares, time = fixed + per_gb * size) projects the
10 GB and 100 GB times that the README sets against the 1 h RTO. The same server and machine as
the main run; smaller databases are generated next to the main one and dropped afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench import fixture
from bench.context import BenchContext
from bench.pipelines import OursBackup, ours_restore
from bench.timing import Measurement, run_rounds

RTO_SECONDS = 3600.0
PROJECT_GB = (10.0, 100.0)


@dataclass
class Point:
    scale: int
    gb: float  # pg_database_size / 1e9
    backup_s: float | None
    restore_s: float | None

    def as_json(self) -> dict[str, object]:
        def per_gb(seconds: float | None) -> float | None:
            return seconds / self.gb if seconds is not None and self.gb else None

        return {
            "scale": self.scale,
            "database_gb": round(self.gb, 3),
            "backup_s": self.backup_s,
            "restore_s": self.restore_s,
            "backup_s_per_gb": per_gb(self.backup_s),
            "restore_s_per_gb": per_gb(self.restore_s),
        }


def measure_scale(ctx: BenchContext, scale: int, count: int) -> Point:
    database = f"{ctx.database}_s{scale}"
    fixture.generate(ctx.pg, database, scale)
    ctx.pg.psql("CHECKPOINT")
    try:
        gb = fixture.database_bytes(ctx.pg, database) / 1e9
        backup = OursBackup(ctx, database)
        run_rounds([backup.pipeline()], count, ctx.pg.data)
        restore = ours_restore(ctx, backup)
        run_rounds([restore], count, ctx.pg.data)
        return Point(scale, gb, backup.row.seconds, restore.row.seconds)
    finally:
        ctx.pg.psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def main_point(scale: int, gb: float, backup: Measurement, restore: Measurement) -> Point:
    return Point(scale, gb, backup.seconds, restore.seconds)


def _fit(xs: list[float], ys: list[float]) -> tuple[float, float] | None:
    """(fixed seconds, seconds per GB) by least squares. None when the sizes are too close to
    separate a fixed cost from a per-GB one, or when noise gives a line that makes no sense
    (negative fixed cost or slope): the caller then scales the largest run proportionally."""
    if len(xs) < 2 or max(xs) < 1.5 * min(xs):
        return None
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mean_x) ** 2 for x in xs
    )
    fixed = mean_y - slope * mean_x
    return (fixed, slope) if fixed >= 0 and slope > 0 else None


def projection(points: list[Point]) -> dict[str, object]:
    out: dict[str, object] = {"rto_s": RTO_SECONDS}
    for what in ("backup", "restore"):
        pairs = [(p.gb, getattr(p, f"{what}_s")) for p in points]
        pairs = [(gb, s) for gb, s in pairs if s is not None]
        fit = _fit([gb for gb, _ in pairs], [s for _, s in pairs])
        if fit is None and pairs:  # proportional to the largest size measured
            gb, seconds = max(pairs)
            fit = (0.0, seconds / gb)
        if fit is None:
            out[what] = None
            continue
        fixed, per_gb = fit
        out[what] = {
            "fixed_s": round(fixed, 2),
            "s_per_gb": round(per_gb, 2),
            **{f"at_{int(gb)}gb_s": round(fixed + per_gb * gb, 1) for gb in PROJECT_GB},
        }
    return out
