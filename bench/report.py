"""The table, the ratios against the goals, and the JSON file."""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
from pathlib import Path

from bench.timing import Measurement

MIB = 1024 * 1024

# (name, numerator row, denominator row, attribute, goal: the ratio must be <= this, or None)
RATIOS: list[tuple[str, str, str, str, float | None]] = [
    ("backup ours/guide", "ours_backup", "guide_backup", "seconds", 1 / 5),
    ("backup ours/pigz", "ours_backup", "pigz_backup", "seconds", 1 / 2.5),
    ("backup ours/limit (-Fd -j -Z0)", "ours_backup", "limit_dump_parallel", "seconds", None),
    ("restore ours/guide", "ours_restore", "guide_restore", "seconds", None),
    ("restore ours/limit", "ours_restore", "limit_restore", "seconds", 1.10),
    ("size ours/guide", "ours_backup", "guide_backup", "bytes", 1.0),
    ("size ours/limit (uncompressed)", "ours_backup", "limit_dump_parallel", "bytes", None),
]


def ratios(rows: dict[str, Measurement]) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for name, top, bottom, attr, goal in RATIOS:
        a = getattr(rows[top], attr) if top in rows else None
        b = getattr(rows[bottom], attr) if bottom in rows else None
        value = a / b if a is not None and b else None
        out[name] = {
            "ratio": value,
            "goal_at_most": goal,
            "met": None if goal is None else (value is not None and value <= goal),
        }
    return out


def _fmt_s(value: object) -> str:
    return f"{value:8.2f}" if isinstance(value, float) else f"{'–':>8}"


def _fmt_bytes(value: int | None) -> str:
    return f"{value / MIB:9.1f}" if value is not None else f"{'–':>9}"


def _fmt_cpu(row: Measurement) -> str:
    """`total (server+client)` CPU-seconds, medians of the runs; – where not measured."""
    if row.cpu_seconds is None or row.server_cpu is None or row.client_cpu is None:
        return f"{'–':>17}"
    return f"{row.cpu_seconds:5.1f} ({row.server_cpu:4.1f}+{row.client_cpu:4.1f})"


def table(title: str, rows: list[Measurement]) -> str:
    lines = [title, f"{'pipeline':<80} {'median s':>8} {'MiB':>9} {'CPU s (srv+cli)':>17}  runs"]
    for row in rows:
        runs = " ".join(f"{run:.2f}" for run in row.runs)
        note = f"  ({row.note})" if row.note else ""
        lines.append(
            f"{row.label[:80]:<80} {_fmt_s(row.seconds)} {_fmt_bytes(row.bytes)} "
            f"{_fmt_cpu(row)}  {runs}{note}"
        )
    return "\n".join(lines)


def ratio_lines(found: dict[str, dict[str, object]]) -> str:
    lines = ["ratios (time or size, ours over the other; goal: at most)"]
    for name, info in found.items():
        value = info["ratio"]
        shown = f"{value:6.3f}" if isinstance(value, float) else f"{'–':>6}"
        speed = (
            f"  ({1 / value:.2f}× faster)"
            if isinstance(value, float) and value and "size" not in name and value < 1
            else ""
        )
        goal = info["goal_at_most"]
        verdict = (
            "" if goal is None else f"  goal ≤ {goal:.3f}: {'MET' if info['met'] else 'NOT MET'}"
        )
        lines.append(f"  {name:<34} {shown}{speed}{verdict}")
    return "\n".join(lines)


def scaling_lines(points: list[dict[str, object]], projection: dict[str, object]) -> str:
    lines = [
        "ours at several sizes (time per GB of database)",
        f"  {'scale':>5} {'GB':>7} {'backup s':>9} {'s/GB':>6} {'restore s':>9} {'s/GB':>6}",
    ]
    for p in points:
        lines.append(
            f"  {p['scale']:>5} {p['database_gb']:>7.3f} {_fmt_s(p['backup_s']):>9} "
            f"{_fmt_s(p['backup_s_per_gb']):>6} {_fmt_s(p['restore_s']):>9} "
            f"{_fmt_s(p['restore_s_per_gb']):>6}"
        )
    rto = float(projection["rto_s"])  # type: ignore[arg-type]
    for what in ("backup", "restore"):
        fit = projection.get(what)
        if isinstance(fit, dict):
            at10, at100 = float(fit["at_10gb_s"]), float(fit["at_100gb_s"])
            lines.append(
                f"  projected {what}: {fit['fixed_s']} s + {fit['s_per_gb']} s/GB -> "
                f"10 GB {at10 / 60:.1f} min, 100 GB {at100 / 60:.1f} min "
                f"(RTO {rto / 60:.0f} min: {'within' if at100 <= rto else 'OVER'} at 100 GB)"
            )
    return "\n".join(lines)


def machine() -> dict[str, object]:
    def version(tool: str) -> str | None:
        if shutil.which(tool) is None:
            return None
        done = subprocess.run([tool, "--version"], capture_output=True, text=True, check=False)
        return (done.stdout or done.stderr).strip().splitlines()[0]

    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    meminfo = Path("/proc/meminfo")
    mem_kb = int(meminfo.read_text().split()[1]) if meminfo.exists() else 0
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    import os

    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "load_average_at_end": load,
        "pigz": version("pigz"),
        "zstd": version("zstd"),
    }


def write_json(path: Path, payload: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    tmp.replace(path)
