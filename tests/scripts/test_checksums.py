"""check_sums (checksums.sh) checks a set's SHA256SUMS with openssl where the image has it and
with sha256sum otherwise, and refuses what `sha256sum --strict -c` refuses, and more: a path
that leaves the set."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "jobs" / "scripts"


def _path_with(tmp_path: Path, hasher: str) -> str:
    """A bin dir with coreutils and only the given hasher (openssl or sha256sum)."""
    bin_dir = tmp_path / f"bin-{hasher}"
    bin_dir.mkdir()
    for tool in ("bash", "cat", "dirname", "basename", "date", hasher):
        found = shutil.which(tool)
        assert found, f"{tool} is not installed"
        (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


def check(folder: Path, path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f'source "{SCRIPTS}/common.sh"; echo "$SHA256_TOOL" >&2; check_sums "$1"',
         "check", str(folder)],
        env={"PATH": path, "HOME": os.environ.get("HOME", "/")},
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip


def make_set(root: Path) -> Path:
    folder = root / "set"
    (folder / "dump").mkdir(parents=True)
    files = {"globals.sql": b"-- roles\n", "dump/toc.dat": b"toc", "dump/1 2.dat.zst": b"\x28\xb5"}
    lines = []
    for name, content in files.items():
        (folder / name).write_bytes(content)
        lines.append(f"{hashlib.sha256(content).hexdigest()}  {name}\n")
    (folder / "SHA256SUMS").write_text("".join(lines))
    return folder


@pytest.mark.parametrize("hasher", ["openssl", "sha256sum"])
def test_a_whole_set_passes_and_each_defect_is_named(tmp_path: Path, hasher: str) -> None:
    path = _path_with(tmp_path, hasher)
    folder = make_set(tmp_path)
    ok = check(folder, path)
    assert ok.returncode == 0, ok.stderr
    assert ok.stderr.strip() == hasher

    (folder / "dump" / "1 2.dat.zst").write_bytes(b"\x28\xb6")
    flipped = check(folder, path)
    assert flipped.returncode == 1 and flipped.stdout == "dump/1 2.dat.zst: FAILED\n"

    (folder / "dump" / "toc.dat").unlink()
    missing = check(folder, path)
    assert missing.returncode == 1 and missing.stdout == "dump/toc.dat: missing\n"


@pytest.mark.parametrize(
    "line",
    [
        f"{'0' * 64}  ../outside",
        f"{'0' * 64}  dump/../../outside",
        f"{'0' * 64}  /etc/hostname",
        f"{'0' * 64} *globals.sql",
        "not a checksum line",
    ],
)
def test_lines_that_are_malformed_or_leave_the_set_are_refused(tmp_path: Path, line: str) -> None:
    folder = make_set(tmp_path)
    (tmp_path / "outside").write_text("secret")
    with (folder / "SHA256SUMS").open("a") as sums:
        sums.write(line + "\n")
    result = check(folder, _path_with(tmp_path, "openssl"))
    assert result.returncode == 1 and "improperly formatted" in result.stdout


def test_an_empty_checksum_file_is_refused(tmp_path: Path) -> None:
    folder = make_set(tmp_path)
    (folder / "SHA256SUMS").write_text("")
    result = check(folder, _path_with(tmp_path, "openssl"))
    assert result.returncode == 1 and "no checksums" in result.stdout
