"""Helpers of the offsite tests: backup sets laid out as the contract says, the scripts' env, runs.

`make_set` builds a set without PostgreSQL (a real folder with files, SHA256SUMS and a manifest in
the contract's format), so upload and fetch can be tested on their own; the round trip test uses
the real backup.sh instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# The step runner and its summary, shared with the PostgreSQL step tests.
from pg_script_helpers import run_script as run_script
from pg_script_helpers import summary as summary

from jobs.local.s3 import LocalS3

# The aws CLI (v1, from PyPI) lives beside the interpreter running the tests.
VENV_BIN = Path(sys.executable).parent
PREFIX = "pgbackup/staging"
# moto takes any credentials: these are distinctive, so a test can tell if one was ever printed.
ACCESS_KEY_ID, SECRET_ACCESS_KEY = "AKIAEXAMPLEKEYID4242", "wJalrXUtnFEMI-secret-never-shown"


def make_set(
    backup_dir: Path,
    database: str,
    set_id: str,
    *,
    status: str = "verified",
    files: Mapping[str, bytes] | None = None,
) -> Path:
    """A complete set `<backup_dir>/<database>/<set_id>/`: dump, globals, SHA256SUMS, manifest."""
    set_dir = backup_dir / database / set_id
    contents = dict(
        files
        if files is not None
        else {
            "dump/toc.dat": b"toc " + set_id.encode() * 50,
            "dump/3001.dat.gz": os.urandom(3000),
            "dump/3002.dat.gz": os.urandom(20000),
            "globals.sql": b"CREATE ROLE app;\n",
        }
    )
    for rel, data in contents.items():
        path = set_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    if "globals.sql" in contents:
        (set_dir / "globals.sql").chmod(0o600)
    sums = {rel: hashlib.sha256(data).hexdigest() for rel, data in contents.items()}
    (set_dir / "SHA256SUMS").write_text(
        "".join(f"{digest}  {rel}\n" for rel, digest in sorted(sums.items()))
    )
    manifest_files = [
        {"path": rel, "size": len(contents[rel]), "sha256": sums[rel]} for rel in sorted(contents)
    ]
    manifest: dict[str, Any] = {
        "format": 1,
        "id": set_id,
        "database": database,
        "status": status,
        "started_at": "2026-01-19T02:00:00Z",
        "finished_at": "2026-01-19T02:00:05Z",
        "dump_format": "directory",
        "total_bytes": sum(len(data) for data in contents.values()),
        "files": manifest_files,
    }
    write_manifest(set_dir / "manifest.json", manifest)
    return set_dir


def write_manifest(path: Path, manifest: Mapping[str, Any]) -> None:
    """The contract's layout: pretty-printed, each top-level field on its own line."""
    lines = [f"  {json.dumps(key)}: {json.dumps(value)}" for key, value in manifest.items()]
    path.write_text("{\n" + ",\n".join(lines) + "\n}\n")


def offsite_env(s3: LocalS3, bucket: str, backup_dir: Path, **extra: str) -> dict[str, str]:
    """A clean environment for upload.sh/fetch.sh against the local S3 server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_", "S3_"))}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(s3.env())
    env.update({"AWS_ACCESS_KEY_ID": ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY})
    env.update({"S3_BUCKET": bucket, "S3_PREFIX": PREFIX, "BACKUP_DIR": str(backup_dir)})
    env.update(extra)
    return env


def assert_no_credentials(proc: subprocess.CompletedProcess[str]) -> None:
    output = proc.stdout + proc.stderr
    assert ACCESS_KEY_ID not in output and SECRET_ACCESS_KEY not in output


def error_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in proc.stderr.splitlines() if "ERROR: " in line]


def offsite_objects(s3: LocalS3, bucket: str, prefix: str = "") -> dict[str, int]:
    """key -> size of every current object under prefix."""
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {obj["Key"]: obj["Size"] for page in pages for obj in page.get("Contents", [])}


def version_counts(s3: LocalS3, bucket: str, prefix: str = "") -> dict[str, int]:
    """key -> how many versions were ever written (the bucket is versioned)."""
    counts: dict[str, int] = {}
    pages = s3.client().get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix)
    for page in pages:
        for version in page.get("Versions", []):
            counts[version["Key"]] = counts.get(version["Key"], 0) + 1
    return counts


OFFSITE_MARK = ".offsite"  # upload.sh's note on the volume that a set is offsite (never uploaded)


def set_files(set_dir: Path) -> dict[str, bytes]:
    """relative path -> content of every file of a set (not upload.sh's offsite mark)."""
    return {
        str(path.relative_to(set_dir)): path.read_bytes()
        for path in sorted(set_dir.rglob("*"))
        if path.is_file() and path.name != OFFSITE_MARK
    }


def put_set(s3: LocalS3, bucket: str, set_dir: Path, *, manifest: bool = True) -> None:
    """Put a set offsite as upload.sh lays it out (manifest last), straight through boto3."""
    client = s3.client()
    database, set_id = set_dir.parent.name, set_dir.name
    files = set_files(set_dir)
    for rel in sorted(files, key=lambda rel: rel == "manifest.json"):
        if rel == "manifest.json" and not manifest:
            continue
        client.put_object(Bucket=bucket, Key=f"{PREFIX}/{database}/{set_id}/{rel}", Body=files[rel])


# Stands in front of the real aws CLI to interrupt an upload at a chosen point: every call goes to
# the real CLI, except `s3 sync`, which per AWS_INTERRUPT either sends only the first N files and
# then SIGKILLs the calling script (a node lost mid-upload), or sends nothing and says it did.
_INTERRUPTER = """#!{python}
import os, signal, subprocess, sys
from pathlib import Path

REAL, MODE = {real!r}, {mode!r}
args = sys.argv[1:]
if "sync" in args:
    if MODE == "sync-does-nothing":
        sys.exit(0)
    n = int(MODE.removeprefix("kill-after-"))
    src = Path(args[args.index("sync") + 1])
    names = sorted(
        str(p.relative_to(src)) for p in src.rglob("*") if p.is_file() and p.name != "manifest.json"
    )[:n]
    only = ["--exclude", "*"] + [arg for name in names for arg in ("--include", name)]
    subprocess.run([REAL, *args, *only], check=True)
    os.kill(os.getppid(), signal.SIGKILL)
    sys.exit(137)
os.execv(REAL, [REAL, *args])
"""


def aws_interrupter(bin_dir: Path, mode: str) -> Path:
    """A folder holding an `aws` that interrupts uploads (mode: kill-after-N, sync-does-nothing)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    wrapper = bin_dir / "aws"
    wrapper.write_text(
        _INTERRUPTER.format(python=sys.executable, real=str(VENV_BIN / "aws"), mode=mode)
    )
    wrapper.chmod(0o755)
    return bin_dir
