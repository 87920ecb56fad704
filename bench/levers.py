"""The levers behind the shipped defaults (`--levers`): format, -j, compression method and level,
and overlapping the checksum with compression, each timed in the same run as the main rows.

pg_dump 15 compresses with gzip only, inside each -j worker. zstd (present in the postgres images)
can compress the files of an uncompressed directory dump after the fact; pg_restore 15 cannot read
`.zst` files, so those are restored by streaming each file through `zstd -d` into a named pipe
that pg_restore opens as the plain `.dat` (no scratch copy), or by decompressing to scratch first.
pigz writes standard gzip, which pg_restore 15 reads natively as `<n>.dat.gz`.
Runs are interleaved (one of each per round) so a burst of load on a shared machine hits all alike.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from bench.context import BenchContext
from bench.timing import Measurement, repeat, run_shell

RESTORE_DB = "bench_lever_restore"


@dataclass
class Lever:
    name: str
    label: str
    script: str  # {out} = output path, {jobs} = parallelism
    restore: str | None = (
        None  # restore script of that output into {db}; None = not restorable here
    )
    row: Measurement = field(init=False)
    restore_row: Measurement | None = field(init=False, default=None)


def _compress_files(tool: str, ext: str, overlap: bool) -> str:
    """Compress each data file of the directory dump {out}; the checksum of the compressed file
    is taken from the same stream (overlap) or by reading the files again afterwards."""
    if overlap:
        each = f'{tool} < "$f" | tee "$f.{ext}" | sha256sum > "$f.{ext}.sha256"; rm "$f"'
        return f"for f in {{out}}/[0-9]*.dat; do {each}; done"
    each = f'{tool} < "$f" > "$f.{ext}"; rm "$f"'
    return f"for f in {{out}}/[0-9]*.dat; do {each}; done; sha256sum {{out}}/* > /dev/null"


# pg_restore -j of a directory dump whose data files are `<n>.dat.zst`: each file streams through
# `zstd -d` into a named pipe with the plain name, in a scratch folder holding only toc.dat.
FIFO_RESTORE = (
    "scratch=$(mktemp -d) && cp {out}/toc.dat $scratch/ && "
    'for f in {out}/[0-9]*.dat.zst; do p=$scratch/$(basename "$f" .zst); mkfifo "$p"; '
    '(zstd -dcq "$f" > "$p") & done; '
    "createdb {db} && pg_restore -j{jobs} -d {db} $scratch; rc=$?; wait; rm -rf $scratch; exit $rc"
)
SCRATCH_RESTORE = (
    "scratch=$(mktemp -d) && cp {out}/toc.dat $scratch/ && "
    "for f in {out}/[0-9]*.dat.zst; do "
    'zstd -dcq -T{jobs} "$f" > $scratch/$(basename "$f" .zst); done && '
    "createdb {db} && pg_restore -j{jobs} -d {db} $scratch; rc=$?; rm -rf $scratch; exit $rc"
)
NATIVE_RESTORE = "createdb {db} && pg_restore -j{jobs} -d {db} {out}"


def levers(jobs: int) -> list[Lever]:
    dir_z0 = f"pg_dump -Fd -j{jobs} -Z0 -f {{out}}"
    found = [
        Lever(
            "custom_z0_file",
            "pg_dump -Fc -Z0 > file (custom format, one process)",
            "pg_dump -Fc -Z0 -f {out}",
            NATIVE_RESTORE,
        ),
        Lever("dir_j1_z0", "pg_dump -Fd -j1 -Z0", "pg_dump -Fd -j1 -Z0 -f {out}"),
        Lever(
            "dir_j_gzip1",
            f"pg_dump -Fd -j{jobs} -Z1 (built-in gzip in each worker)",
            f"pg_dump -Fd -j{jobs} -Z1 -f {{out}}",
            NATIVE_RESTORE,
        ),
        Lever(
            "custom_z0_zstd1_pipe",
            f"pg_dump -Fc -Z0 | zstd -1 -T{jobs}",
            f"pg_dump -Fc -Z0 | zstd -q -1 -T{jobs} > {{out}}",
        ),
    ]
    if shutil.which("zstd"):
        found += [
            Lever(
                "dir_z0_then_zstd1_overlap",
                f"-Fd -j{jobs} -Z0, then zstd -1 -T{jobs} per file, sha256 from the same stream",
                dir_z0 + " && " + _compress_files(f"zstd -q -1 -T{jobs}", "zst", True),
                FIFO_RESTORE,
            ),
            Lever(
                "dir_z0_then_zstd1_separate",
                f"-Fd -j{jobs} -Z0, then zstd -1 -T{jobs} per file, then sha256sum of the files",
                dir_z0 + " && " + _compress_files(f"zstd -q -1 -T{jobs}", "zst", False),
                SCRATCH_RESTORE,
            ),
            Lever(
                "dir_z0_then_zstd3_overlap",
                f"-Fd -j{jobs} -Z0, then zstd -3 -T{jobs} per file, sha256 from the same stream",
                dir_z0 + " && " + _compress_files(f"zstd -q -3 -T{jobs}", "zst", True),
            ),
        ]
    if shutil.which("pigz"):
        found.append(
            Lever("dir_z0_then_pigz1_overlap",
                  f"-Fd -j{jobs} -Z0, then pigz -1 -p{jobs} per file (.dat.gz, read natively)",
                  dir_z0 + " && " + _compress_files(f"pigz -1 -p{jobs}", "gz", True),
                  NATIVE_RESTORE)
        )  # fmt: skip
    return found


def measure(ctx: BenchContext, count: int) -> list[Measurement]:
    chosen = levers(ctx.jobs)
    root = ctx.workdir / "levers"
    for lever in chosen:
        lever.row = Measurement(f"lever_{lever.name}", lever.label, "backup")
        if lever.restore:
            lever.restore_row = Measurement(
                f"lever_{lever.name}_restore",
                f"pg_restore -j{ctx.jobs} of: {lever.label}",
                "restore",
            )
    env = ctx.tool_env()
    admin_env = ctx.tool_env("postgres")
    for _ in range(count):  # interleaved rounds
        for lever in chosen:
            out = root / lever.name
            shutil.rmtree(out, ignore_errors=True) if out.is_dir() else out.unlink(missing_ok=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            script = lever.script.format(out=out, jobs=ctx.jobs)
            repeat(lever.row, 1, lambda s=script, w=lever.label: run_shell(s, env, w),  # type: ignore[misc]
                   server_data=ctx.pg.data)  # fmt: skip
            lever.row.bytes = _set_bytes(out)
            if lever.restore and lever.restore_row is not None:
                ctx.pg.psql(f'DROP DATABASE IF EXISTS "{RESTORE_DB}" WITH (FORCE)')
                restore = lever.restore.format(out=out, jobs=ctx.jobs, db=RESTORE_DB)
                repeat(lever.restore_row, 1,
                       lambda s=restore, w=lever.label: run_shell(s, admin_env, f"restore of {w}"),  # type: ignore[misc]
                       server_data=ctx.pg.data)  # fmt: skip
                ctx.pg.psql(f'DROP DATABASE IF EXISTS "{RESTORE_DB}" WITH (FORCE)')
    shutil.rmtree(root, ignore_errors=True)
    rows: list[Measurement] = []
    for lever in chosen:
        rows.append(lever.row)
        if lever.restore_row is not None:
            rows.append(lever.restore_row)
    return rows


def _set_bytes(out: Path) -> int:
    """What would be kept: the dump without the side files holding the checksums."""
    if out.is_file():
        return out.stat().st_size
    return sum(p.stat().st_size for p in out.rglob("*") if p.is_file() and p.suffix != ".sha256")
