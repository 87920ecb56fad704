"""`python -m bench` (`make bench`): generate the fixture in a throwaway PostgreSQL, then time the
guide's backup and restore, ours as shipped, and the limits, in one run; print the table and the
ratios against the goals of the performance issue; write them as JSON."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from bench import (
    downtime,
    dr_settings,
    fixture,
    levers,
    memory,
    report,
    restore_parts,
    scaling,
)
from bench.context import REPO, SCRIPTS, BenchContext
from bench.cpu import become_subreaper
from bench.pipelines import (
    OursBackup,
    guide_backup,
    guide_restore,
    limit_dump_parallel,
    limit_dump_serial,
    limit_restore,
    ours_restore,
    pigz_backup,
)
from bench.timing import Measurement, run_rounds
from jobs.errors import ExitCode, PgBackupError
from jobs.local.postgres import LocalPostgres

DATABASE = "bench"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--scale",
        type=int,
        default=50,
        help="fixture size: pgbench scale; 50 gives the issue's 1.65 GB database",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per row (the median is kept)")
    parser.add_argument(
        "--smaller-scales",
        default=None,
        help="comma-separated scales for the time-per-GB rows "
        "(default: a quarter and a half of --scale; 'none' to skip)",
    )
    parser.add_argument(
        "--levers",
        action="store_true",
        help="also time the levers behind the defaults (format, -j, compression)",
    )
    parser.add_argument(
        "--no-dr",
        action="store_true",
        help="skip the durable vs non-durable brand-new-server restore rows",
    )
    parser.add_argument(
        "--scripts",
        type=Path,
        default=SCRIPTS,
        help="the in-container scripts to time (default: jobs/scripts, as shipped)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "build" / "bench" / "results.json")
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 2,
        help="parallelism of the limit rows and the pod's CPU limit (default: cores)",
    )
    args = parser.parse_args(argv)
    if args.scale < 1 or args.repeat < 1 or args.jobs < 1:
        parser.error("--scale, --repeat and --jobs must be at least 1")
    return args


def smaller_scales(args: argparse.Namespace) -> list[int]:
    if args.smaller_scales == "none":
        return []
    if args.smaller_scales:
        try:
            return sorted({int(part) for part in args.smaller_scales.split(",") if part.strip()})
        except ValueError as error:
            raise PgBackupError(
                f"--smaller-scales {args.smaller_scales!r} is not a list of integers",
                "use e.g. --smaller-scales 12,25", ExitCode.USAGE) from error  # fmt: skip
    return sorted({s for s in (args.scale // 4, args.scale // 2) if 1 <= s < args.scale})


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Tables(NamedTuple):
    main: list[Measurement]
    parts: list[Measurement]
    dr: list[Measurement]
    levers: list[Measurement]


def run(args: argparse.Namespace) -> tuple[dict[str, object], Tables]:
    become_subreaper()  # (so the CPU of what a script leaves running is charged too)
    workdir = Path(tempfile.mkdtemp(prefix="pgbackup-bench-"))
    server = LocalPostgres().init()
    server.start()
    try:
        ctx = BenchContext(server, DATABASE, workdir, args.jobs, args.scripts.resolve())
        say(f"generating the fixture at scale {args.scale}")
        started = time.monotonic()
        fixture.generate(server, DATABASE, args.scale)
        fixture.make_durable(server)
        db_bytes = fixture.database_bytes(server, DATABASE)
        say(f"fixture: {db_bytes / 1e9:.2f} GB in {time.monotonic() - started:.0f} s")

        ours = OursBackup(ctx)
        backups = [guide_backup(ctx), pigz_backup(ctx), ours.pipeline(),
                   limit_dump_serial(ctx), limit_dump_parallel(ctx)]  # fmt: skip
        say(f"backups: {len(backups)} pipelines × {args.repeat} rounds")
        run_rounds(backups, args.repeat, server.data)
        restores = [guide_restore(ctx), ours_restore(ctx, ours), limit_restore(ctx)]
        say(f"restores: {len(restores)} pipelines × {args.repeat} rounds")
        run_rounds(restores, args.repeat, server.data)
        rows = {p.row.name: p.row for p in backups + restores}
        main_rows = list(rows.values())

        say("restore parts: the checksum check, the decompression, the row counts, each apart")
        part_rows = restore_parts.measure(ctx, ours, args.repeat)

        say("downtime: restore.sh RESTORE_STEP=prepare, then swap under a connection probe")
        guide_s = rows["guide_restore"].seconds
        outage = downtime.measure(ctx, ours.backup_id, guide_s)

        say("memory: one untimed run each of backup.sh and restore.sh")
        peak_memory = memory.measure(ctx, ours.backup_id)

        dr_rows: list[Measurement] = []
        if not args.no_dr:
            say("disaster recovery: durable vs non-durable brand-new server")
            dr_rows = dr_settings.measure(ctx, ours.backup_id, args.repeat)

        lever_rows: list[Measurement] = []
        if args.levers:
            say("levers")
            lever_rows = levers.measure(ctx, args.repeat)

        points = [
            scaling.main_point(
                args.scale, db_bytes / 1e9, rows["ours_backup"], rows["ours_restore"]
            )
        ]
        for scale in smaller_scales(args):
            say(f"scaling: our backup and restore at scale {scale}")
            points.insert(-1, scaling.measure_scale(ctx, scale, args.repeat))
        points.sort(key=lambda p: p.gb)
        found_ratios = report.ratios(rows)
        results: dict[str, object] = {
            "format": 1,
            "machine": report.machine(),
            "server": server.psql("SELECT version()"),
            "fixture": {"scale": args.scale, "database_bytes": db_bytes},
            "repeat": args.repeat,
            "jobs": args.jobs,
            "rows": {r.name: r.as_json() for r in main_rows},
            "ratios": found_ratios,
            "goals_met": all(
                info["met"] for info in found_ratios.values() if info["met"] is not None
            ),
            "restore_parts": {
                "rows": {r.name: r.as_json() for r in part_rows},
                **restore_parts.summary(rows, part_rows),
            },
            "downtime": outage,
            "memory": peak_memory,
            "dr_settings": {r.name: r.as_json() for r in dr_rows},
            "levers": {r.name: r.as_json() for r in lever_rows},
            "scaling": [p.as_json() for p in points],
            "projection": scaling.projection(points),
        }
        return results, Tables(main_rows, part_rows, dr_rows, lever_rows)
    finally:
        server.destroy()
        shutil.rmtree(workdir, ignore_errors=True)


def print_report(results: dict[str, object], tables: Tables) -> None:
    fixture_info = results["fixture"]
    machine = results["machine"]
    assert isinstance(fixture_info, dict) and isinstance(machine, dict)
    print(
        f"fixture: scale {fixture_info['scale']}, {fixture_info['database_bytes'] / 1e9:.2f} GB; "
        f"{machine['cpus']} CPUs ({machine['cpu_model']}), medians of {results['repeat']}"
    )
    print(report.table("main rows", tables.main))
    print(report.ratio_lines(results["ratios"]))  # type: ignore[arg-type]
    if tables.parts:
        parts = results["restore_parts"]
        assert isinstance(parts, dict)
        title = "what our restore adds to the limit's, each part timed apart"
        print(report.table(title, tables.parts))
        print(restore_parts.summary_line(parts))
    outage = results["downtime"]
    assert isinstance(outage, dict)
    print("app downtime (connections to the live database refused)")
    for key, value in outage.items():
        shown = f"{value:.3f}" if isinstance(value, float) else value
        print(f"  {key:<24} {shown}")
    print(f"memory (largest process of our steps, KiB): {results['memory']}")
    if tables.dr:
        print(report.table("restore into a brand-new server (disaster recovery)", tables.dr))
    if tables.levers:
        print(report.table("levers", tables.levers))
    print(report.scaling_lines(results["scaling"], results["projection"]))  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        results, tables = run(args)
    except PgBackupError as error:
        print(f"bench: {error.message}\n  fix: {error.fix}", file=sys.stderr)
        return int(error.code)
    print_report(results, tables)
    report.write_json(args.out, results)
    print(f"results written to {args.out}")
    # pigz is optional (the pigz-style row is a reference); our scripts are not.
    missing = [r.name for r in tables.main if not r.runs and r.name != "pigz_backup"]
    if missing:
        print(f"bench: not measured: {', '.join(missing)} (see the notes above)", file=sys.stderr)
        return int(ExitCode.NOT_FOUND)
    return int(ExitCode.OK)


if __name__ == "__main__":
    sys.exit(main())
