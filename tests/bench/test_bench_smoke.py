"""`make bench` end to end at a tiny scale: every row, ratio and section lands in the JSON.

Speed is the benchmark's business, not the tests': nothing here asserts how fast anything was.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.report import RATIOS  # noqa: E402

MAIN_ROWS = (
    "guide_backup",
    "pigz_backup",
    "ours_backup",
    "limit_dump_serial",
    "limit_dump_parallel",
    "guide_restore",
    "ours_restore",
    "limit_restore",
)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    out = tmp_path_factory.mktemp("bench") / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--scale", "1", "--repeat", "1",
         "--smaller-scales", "none", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ratios" in done.stdout and "backup ours/guide" in done.stdout
    loaded: dict[str, object] = json.loads(out.read_text())
    return loaded


def test_every_row_is_measured_with_a_size_where_one_is_written(results: dict) -> None:
    rows = results["rows"]
    for name in MAIN_ROWS:
        if name == "pigz_backup" and shutil.which("pigz") is None:
            assert "pigz" in rows[name]["note"]
            continue
        assert rows[name]["seconds"] is not None and rows[name]["seconds"] > 0, name
    for name in ("guide_backup", "ours_backup", "limit_dump_parallel"):
        assert rows[name]["bytes"] > 0, name


def test_the_cpu_of_each_run_is_charged_to_the_server_and_the_clients(results: dict) -> None:
    rows = results["rows"]
    for name in ("ours_backup", "ours_restore", "limit_restore"):
        row = rows[name]
        assert row["server_cpu_seconds"] > 0 and row["client_cpu_seconds"] > 0, name
        # (one run each here: the median of the totals is the total of the medians)
        total = row["server_cpu_seconds"] + row["client_cpu_seconds"]
        assert row["cpu_seconds"] == pytest.approx(total), name


def test_every_ratio_is_computed_and_judged_against_its_goal(results: dict) -> None:
    ratios = results["ratios"]
    for name, _, bottom, _, goal in RATIOS:
        if bottom == "pigz_backup" and shutil.which("pigz") is None:
            continue
        assert isinstance(ratios[name]["ratio"], float), name
        assert (ratios[name]["met"] is None) == (goal is None), name
    assert isinstance(results["goals_met"], bool)


def test_the_parts_our_restore_adds_are_each_timed_with_their_cpu(results: dict) -> None:
    parts = results["restore_parts"]
    names = {"part_checksums", "part_row_counts"}
    if shutil.which("zstd"):
        names.add("part_decompression")
    assert set(parts["rows"]) == names
    for name, row in parts["rows"].items():
        assert row["seconds"] > 0 and row["cpu_seconds"] is not None, name
    # the counts are charged to the server (ticks of 10 ms: a tiny fixture may show none); the
    # hashing, which check_sums runs in a process substitution, to the clients
    assert parts["rows"]["part_row_counts"]["server_cpu_seconds"] >= 0
    assert parts["rows"]["part_checksums"]["client_cpu_seconds"] > 0
    assert parts["parts_cpu_s"] == pytest.approx(
        sum(row["cpu_seconds"] for row in parts["rows"].values())
    )
    assert isinstance(parts["ours_minus_limit_s"], float)
    assert parts["rest_cpu_s"] == pytest.approx(
        parts["ours_minus_limit_cpu_s"] - parts["parts_cpu_s"]
    )


def test_downtime_disaster_recovery_and_scaling_sections(results: dict) -> None:
    outage = results["downtime"]
    assert outage["ours_swap_step_s"] > 0 and outage["ours_prepare_s"] > 0
    assert outage["ours_refused_window_s"] >= 0 and outage["guide_downtime_s"] > 0
    for row in results["dr_settings"].values():
        assert row["seconds"] > 0
    assert len(results["scaling"]) == 1
    for what in ("backup", "restore"):
        projected = results["projection"][what]
        assert projected["at_10gb_s"] > 0 and projected["at_100gb_s"] > projected["at_10gb_s"]
