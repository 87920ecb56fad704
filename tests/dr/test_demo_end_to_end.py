"""`pgbackup demo` end to end, as `make demo` runs it: the lost database comes back from offsite,
the report shows RTO and RPO, and nothing is left running or lying around."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _demo_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("pgbackup-demo-*")}


def test_demo_loses_the_database_and_brings_it_back_with_rto_and_rpo(tmp_path: Path) -> None:
    before = _demo_dirs()
    done = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "demo", "--no-render", "--keep-dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = done.stdout
    # The app's data before the loss and after the rebuild, table by table.
    for table, rows in (
        ("users", 200),
        ("word_lists", 400),
        ("words", 3000),
        ("test_attempts", 2000),
    ):
        assert re.search(rf"^{table}\s+{rows}\s+{rows}$", report, re.M), report
    assert re.search(r"RTO achieved: \d+:\d\d:\d\d \(target 1:00:00\) — met", report)
    assert re.search(r"RPO: \d+:\d\d:\d\d of writes lost .*target 24:00:00\) — met", report)
    assert "Nothing is left running" in report
    # Progress was shown, in order.
    log = done.stderr
    assert (
        log.index("the scheduled backup")
        < log.index("the cluster is lost")
        < log.index("dr-rebuild")
    )
    # Nothing left: the servers it started are gone, its temporary folder too; only what it kept.
    for port in re.findall(r"127\.0\.0\.1:(\d+)", log):
        assert not _listening(int(port)), f"something still listens on {port}"
    assert _demo_dirs() <= before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dr-demo.json", "timeline.txt"]
