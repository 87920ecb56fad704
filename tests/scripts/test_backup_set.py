"""What backup.sh leaves on the volume: the contract's layout and manifest, read the way the
shell steps read it; what inventory.sh and verify.sh report about it."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

from pg_script_helpers import SCRIPTS, make_database, run_script, script_env, summary

from jobs.local.postgres import LocalPostgres


def test_backup_set_follows_the_contract(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    make_database(pg, dbname)
    env = script_env(pg, base_env, dbname, backup_dir, COMPRESSION="gzip:1")
    result = run_script("backup.sh", env)
    assert result.returncode == 0, result.stderr
    info = summary(result)
    set_dir = backup_dir / dbname / info["id"]
    assert Path(info["path"]) == set_dir and info["bytes"] > 0
    assert (backup_dir / f"backup_{info['id']}.log").read_text().count(info["id"]) >= 1

    manifest_text = (set_dir / "manifest.json").read_text()
    manifest = json.loads(manifest_text)
    for line in (
        '  "status": "verified",',
        f'  "id": "{info["id"]}",',
        f'  "database": "{dbname}",',
    ):
        assert line in manifest_text.splitlines()  # one scalar per line, for grep/sed
    assert manifest["format"] == 1 and manifest["dump_format"] == "directory"
    assert manifest["compression"] == "gzip" and manifest["dump_jobs"] == 2
    assert manifest["tables"] == [{"schema": "public", "name": "items", "rows": 100}]
    assert manifest["verification"]["checksums"] == "ok"
    listed = {f["path"]: f for f in manifest["files"]}
    assert set(listed) == {
        str(p.relative_to(set_dir)) for p in set_dir.rglob("*")
        if p.is_file() and p.name not in ("manifest.json", "SHA256SUMS")
    }  # fmt: skip
    for path, entry in listed.items():
        data = (set_dir / path).read_bytes()
        assert entry["size"] == len(data) and entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["total_bytes"] == sum(f["size"] for f in manifest["files"])
    assert subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=set_dir, capture_output=True,
                          check=False).returncode == 0  # fmt: skip

    # The shell helpers read the manifest as the other steps do.
    read = subprocess.run(
        ["bash", "-c", f'source {SCRIPTS}/common.sh; manifest_field "$1" status; '
         f'manifest_field "$1" total_bytes; latest_verified_id "$2"',
         "_", str(set_dir / "manifest.json"), str(backup_dir / dbname)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert read.stdout.split() == ["verified", str(manifest["total_bytes"]), info["id"]]

    verify = run_script("verify.sh", env)
    assert verify.returncode == 0, verify.stderr
    assert summary(verify)["status"] == "verified" and summary(verify)["id"] == info["id"]
    lines = [json.loads(line) for line in run_script("inventory.sh", env).stdout.splitlines()]
    assert lines[0]["id"] == info["id"] and lines[0]["complete"] is True
    assert lines[0]["status"] == "verified" and lines[0]["bytes"] == manifest["total_bytes"]
    assert lines[-1]["event"] == "volume" and lines[-1]["avail_bytes"] > 0
    # Another database's sets are only summed up, as is a rehearsal's copy of another stack's.
    for other in ("billing", f".stacks/production/{dbname}"):
        shutil.copytree(set_dir, backup_dir / other / info["id"])
    (backup_dir / "billing" / f"{info['id']}-2.partial").mkdir()  # counted too
    (backup_dir / ".stacks" / "staging" / dbname).mkdir(parents=True)  # no sets: left out
    lines = [json.loads(line) for line in run_script("inventory.sh", env).stdout.splitlines()]
    assert [line["id"] for line in lines if "id" in line] == [info["id"]]
    folders = [line for line in lines if line.get("event") == "folder"]
    assert [(f["folder"], f["sets"]) for f in folders] == [
        (f".stacks/production/{dbname}", 1),
        ("billing", 2),
    ]
    assert all(f["bytes"] >= manifest["total_bytes"] for f in folders)
    # A set an upload set aside as corrupt is listed as such, never as one to restore.
    shutil.copytree(set_dir, backup_dir / dbname / "20200101t020000z.corrupt")
    lines = [json.loads(line) for line in run_script("inventory.sh", env).stdout.splitlines()]
    aside = next(line for line in lines if line.get("id") == "20200101t020000z")
    assert (aside["status"], aside["complete"]) == ("corrupt", False)


def test_backup_by_a_role_that_is_not_superuser_saves_roles_without_passwords(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path, tmp_path: Path
) -> None:
    make_database(pg, dbname)
    role = f"bk_{dbname}"
    pg.psql(f"CREATE ROLE {role} LOGIN PASSWORD 'backup-role-pw'")
    pg.psql(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}", dbname)
    password_file = tmp_path / "password"
    password_file.write_text("backup-role-pw\n")
    env = script_env(
        pg, base_env, dbname, backup_dir, PGUSER=role, PGPASSWORD_FILE=str(password_file)
    )
    result = run_script("backup.sh", env)
    assert result.returncode == 0, result.stderr
    assert "not a superuser" in result.stderr
    manifest = json.loads((Path(summary(result)["path"]) / "manifest.json").read_text())
    assert manifest["globals"] == "no-role-passwords"
    assert manifest["tables"] == [{"schema": "public", "name": "items", "rows": 100}]
    globals_sql = (Path(summary(result)["path"]) / "globals.sql").read_text()
    assert f"CREATE ROLE {role};" in globals_sql and "SCRAM-SHA-256$" not in globals_sql
