"""Each compression route round-trips: external zstd (auto on pg_dump 15 with a zstd binary),
gzip inside pg_dump, none. The manifest names the route; a damaged .zst file is refused before
anything is touched; an image without zstd falls back to gzip."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from pg_script_helpers import (
    database_names,
    error_line,
    latest_set,
    pg_dump_text,
    restore_copy,
    rich_database,
    run_script,
    script_env,
    summary,
    tool_shims,
)

from jobs.local.postgres import LocalPostgres

# What the scripts call, besides the PostgreSQL tools (first on PATH from their own bin dir).
TOOLS = (
    "bash", "basename", "cat", "chmod", "cp", "cut", "date", "df", "dirname", "du", "env", "flock",
    "grep", "gzip", "head", "id", "kill", "ln", "mkdir", "mkfifo", "mktemp", "mv", "rm", "sed",
    "sha256sum", "sleep", "sort", "stat", "sync", "tail", "tee", "touch", "tr", "wc",
)  # fmt: skip


def _manifest(set_dir: Path) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((set_dir / "manifest.json").read_text())
    return loaded


def _data_files(set_dir: Path) -> list[str]:
    return sorted(p.name for p in (set_dir / "dump").iterdir() if p.name != "toc.dat")


@pytest.mark.parametrize(
    ("compression", "route", "suffix"),
    [
        ("auto", "zstd:1 (external)", ".dat.zst"),
        ("gzip", "gzip", ".dat.gz"),
        ("none", "none", ".dat"),
    ],
)
def test_each_route_restores_identical_data(
    pg: LocalPostgres,
    base_env: dict[str, str],
    dbname: str,
    backup_dir: Path,
    compression: str,
    route: str,
    suffix: str,
) -> None:
    rich_database(pg, dbname, dbname[2:8])
    env = script_env(pg, base_env, dbname, backup_dir, COMPRESSION=compression)
    backup = run_script("backup.sh", env)
    assert backup.returncode == 0, backup.stderr
    set_dir = latest_set(backup_dir, dbname)
    assert _manifest(set_dir)["compression"] == route
    assert summary(backup)["compression"] == route
    data = _data_files(set_dir)
    assert data and all(name.endswith(suffix) for name in data)
    assert run_script("verify.sh", env).returncode == 0

    restore_copy(pg, env, dbname)


def test_flipped_byte_in_a_zstd_file_is_refused_before_anything_is_touched(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    rich_database(pg, dbname, dbname[2:8])
    env = script_env(pg, base_env, dbname, backup_dir)
    assert run_script("backup.sh", env).returncode == 0
    victim = max((latest_set(backup_dir, dbname) / "dump").glob("*.dat.zst"),
                 key=lambda p: p.stat().st_size)  # fmt: skip
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    victim.write_bytes(bytes(raw))
    before, dbs = pg_dump_text(pg, dbname), database_names(pg)

    result = run_script("restore.sh", env)
    assert result.returncode == 65 and "fails its checksums" in error_line(result)
    assert run_script("verify.sh", env).returncode == 65
    assert pg_dump_text(pg, dbname) == before and database_names(pg) == dbs


def _path_without_zstd(pg: LocalPostgres, tmp_path: Path) -> str:
    """A bin dir with every tool the scripts use except zstd (the image without it)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, f"{tool} is not installed"
        (bin_dir / tool).symlink_to(found)
    return f"{pg.bindir}{os.pathsep}{bin_dir}"


def test_auto_falls_back_to_gzip_without_a_zstd_binary(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path, tmp_path: Path
) -> None:
    rich_database(pg, dbname, dbname[2:8])
    env = script_env(pg, base_env, dbname, backup_dir, PATH=_path_without_zstd(pg, tmp_path))
    backup = run_script("backup.sh", env)
    assert backup.returncode == 0, backup.stderr
    set_dir = latest_set(backup_dir, dbname)
    assert _manifest(set_dir)["compression"] == "gzip"
    assert all(name.endswith(".dat.gz") for name in _data_files(set_dir))

    zstd_asked = run_script("backup.sh", {**env, "COMPRESSION": "zstd"})
    assert zstd_asked.returncode == 78 and "no zstd binary" in error_line(zstd_asked)

    restore_copy(pg, env, dbname)


def test_a_zstd_set_is_refused_where_nothing_can_read_it(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path, tmp_path: Path
) -> None:
    rich_database(pg, dbname, dbname[2:8])
    env = script_env(pg, base_env, dbname, backup_dir)
    assert run_script("backup.sh", env).returncode == 0
    dbs = database_names(pg)
    no_zstd = {**env, "PATH": _path_without_zstd(pg, tmp_path)}
    result = run_script("restore.sh", {**no_zstd, "TARGET_DATABASE": f"{dbname}_copy"})
    assert result.returncode == 78 and "zstd" in error_line(result)
    assert database_names(pg) == dbs


TRICKY_TABLES = """
CREATE TABLE lines (id int, body text);
INSERT INTO lines VALUES
    (1, E'two\\nlines'), (2, E'carriage\\rreturn'), (3, E'back\\\\slash'), (4, '\\.'),
    (5, E'\\\\.\\n\\\\.'), (6, E'tab\\there'), (7, NULL), (8, ''), (9, E'\\n\\n\\n');
INSERT INTO lines SELECT g, md5(g::text) FROM generate_series(10, 5000) g;
CREATE TABLE empty_one (id int);
CREATE TABLE only_nulls (a text, b int);
INSERT INTO only_nulls SELECT NULL, NULL FROM generate_series(1, 7);
CREATE TABLE "we""ird name" (x int);
INSERT INTO "we""ird name" VALUES (1), (2);
SELECT lo_from_bytea(0, 'a large object'::bytea);
"""


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_rows_counted_from_the_dump_itself_match_the_tables(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path, jobs: str
) -> None:
    """On the external route rows are counted from each data file while it is compressed (after
    pg_dump with -j 1, as each table finishes with -j 2): values holding newlines, backslashes
    or a lone `\\.` are one row each, and a large object's file is no table."""
    pg.psql(f'CREATE DATABASE "{dbname}"')
    pg.psql(TRICKY_TABLES, dbname)
    env = script_env(pg, base_env, dbname, backup_dir, DUMP_JOBS=jobs)
    backup = run_script("backup.sh", env)
    assert backup.returncode == 0, backup.stderr
    set_dir = latest_set(backup_dir, dbname)
    manifest = _manifest(set_dir)
    assert manifest["row_counts"] == "exact"
    assert manifest["tables"] == [
        {"schema": "public", "name": name, "rows": rows}
        for name, rows in [("empty_one", 0), ("lines", 5000), ("only_nulls", 7), ('we"ird name', 2)]
    ]
    data = _data_files(set_dir)
    assert data and all(name.endswith(".dat.zst") or name == "blobs.toc" for name in data)
    assert any(name.startswith("blob_") for name in data)

    restore = restore_copy(pg, env, dbname)
    assert summary(restore)["row_counts"] == "exact"


def test_pg_dump_leaves_the_flush_to_the_backup(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path, tmp_path: Path
) -> None:
    """pg_dump ends by opening every file of its folder to flush it, while the compressors are
    removing the plain ones (it then failed on a vanished file). The backup passes --no-sync and
    flushes the kept files itself, once."""
    rich_database(pg, dbname, dbname[2:8])
    args = tmp_path / "pg_dump.args"
    path = tool_shims(tmp_path, pg, {"pg_dump": f'printf "%s\\n" "$@" >>"{args}"'})
    env = script_env(pg, base_env, dbname, backup_dir, PATH=path)
    env.pop("PG_BINDIR")  # (it would go first on PATH, before the shim)
    backup = run_script("backup.sh", env)
    assert backup.returncode == 0, backup.stderr
    assert summary(backup)["compression"] == "zstd:1 (external)"
    dump_calls = [line for line in args.read_text().splitlines() if line.startswith("--snapshot=")]
    assert len(dump_calls) == 1 and "--no-sync" in args.read_text().splitlines()
