"""The restore counts each table's rows as pg_restore -j reports its data loaded, while the other
tables still load (loaded_rows.sh); the check against the manifest counts only the rest. The
counts prove as much as before: a table whose rows differ from the manifest still fails the
restore, and a counting session that cannot run leaves every table to the check."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from pg_script_helpers import (
    database_names,
    latest_set,
    refusing_session,
    restore_copy,
    run_script,
    script_env,
)

from jobs.errors import ExitCode
from jobs.local.postgres import LocalPostgres


def _three_tables(pg: LocalPostgres, name: str) -> None:
    pg.psql(f'CREATE DATABASE "{name}"')
    pg.psql(
        """
        CREATE SCHEMA "odd schema";
        CREATE TABLE "odd schema"."with space" (id int PRIMARY KEY, note text);
        CREATE TABLE empty_one (id int);
        CREATE TABLE items (id bigint PRIMARY KEY, body text NOT NULL);
        INSERT INTO "odd schema"."with space" SELECT g, 'n' || g FROM generate_series(1, 700) g;
        INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 50000) g;
        """,
        name,
    )


def _backed_up(
    pg: LocalPostgres, base_env: dict[str, str], name: str, backup_dir: Path
) -> dict[str, str]:
    _three_tables(pg, name)
    env = script_env(pg, base_env, name, backup_dir)
    backup = run_script("backup.sh", env)
    assert backup.returncode == 0, backup.stderr
    return env


def test_every_table_is_counted_as_it_loads(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    env = _backed_up(pg, base_env, dbname, backup_dir)
    restore = restore_copy(pg, env, dbname)
    assert "rows of 3 of 3 tables counted as they loaded" in restore.stderr, restore.stderr
    assert "3 tables match the manifest (row counts: exact)" in restore.stderr


def test_one_job_leaves_the_counts_to_the_check(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    """pg_restore -j 1 reports no table as finished: no counting session is started."""
    env = _backed_up(pg, base_env, dbname, backup_dir)
    restore = restore_copy(pg, env, dbname, DUMP_JOBS="1")
    assert "counted as they loaded" not in restore.stderr
    assert "3 tables match the manifest (row counts: exact)" in restore.stderr


def test_a_counting_session_that_cannot_connect_leaves_the_counts_to_the_check(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path, tmp_path: Path
) -> None:
    env = _backed_up(pg, base_env, dbname, backup_dir)
    shimmed = refusing_session(
        tmp_path, pg, env, "pgbackup-row-counter", "FATAL:  sorry, too many clients already"
    )
    restore = restore_copy(pg, shimmed, dbname)
    assert "rows of 0 of 3 tables counted as they loaded" in restore.stderr, restore.stderr
    assert "the row counter failed to count" in restore.stderr  # and why:
    assert "too many clients already" in restore.stderr
    assert "3 tables match the manifest (row counts: exact)" in restore.stderr


def test_a_table_counted_as_it_loaded_still_fails_a_wrong_manifest(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    env = _backed_up(pg, base_env, dbname, backup_dir)
    manifest = latest_set(backup_dir, dbname) / "manifest.json"
    text, changed = re.subn(
        r'("name": "items", "rows": )50000\b', r"\g<1>50005", manifest.read_text()
    )
    assert changed == 1
    manifest.write_text(text)
    before = database_names(pg)
    restore = run_script("restore.sh", {**env, "TARGET_DATABASE": f"{dbname}_copy"})
    assert restore.returncode == ExitCode.CORRUPT, restore.stderr
    assert "rows of 3 of 3 tables counted as they loaded" in restore.stderr, restore.stderr
    assert "public.items: manifest 50005 rows, restored 50000" in restore.stderr
    assert database_names(pg) == before


@pytest.mark.parametrize("compression", ["auto", "gzip"])
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_table_with_inheritance_children_is_counted_with_them(
    pg: LocalPostgres,
    base_env: dict[str, str],
    dbname: str,
    backup_dir: Path,
    compression: str,
    jobs: str,
) -> None:
    """count(*) of a parent includes its children's rows, in the manifest and in the check; the
    rows of the parent's own data (from the dump's file, or counted as it loaded) are not used."""
    pg.psql(f'CREATE DATABASE "{dbname}"')
    pg.psql(
        """
        CREATE TABLE parent (id int);
        CREATE TABLE child (note text) INHERITS (parent);
        INSERT INTO parent SELECT g FROM generate_series(1, 100) g;
        INSERT INTO child SELECT g, 'c' FROM generate_series(1, 50) g;
        """,
        dbname,
    )
    env = script_env(pg, base_env, dbname, backup_dir, COMPRESSION=compression, DUMP_JOBS=jobs)
    assert run_script("backup.sh", env).returncode == 0
    manifest = json.loads((latest_set(backup_dir, dbname) / "manifest.json").read_text())
    assert {t["name"]: t["rows"] for t in manifest["tables"]} == {"parent": 150, "child": 50}
    restore_copy(pg, env, dbname)


def test_names_the_archive_list_cannot_tell_apart_are_left_to_the_check(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    """The list prints a line break in a name as a space: "a<newline>b" and "a b" share an entry,
    so neither is counted as it loads (either could be the table that entry finds)."""
    pg.psql(f'CREATE DATABASE "{dbname}"')
    pg.psql(
        """
        CREATE TABLE "a
b" (id int);
        CREATE TABLE "a b" (id int);
        CREATE TABLE plain (id int);
        INSERT INTO "a
b" VALUES (1);
        INSERT INTO "a b" SELECT g FROM generate_series(1, 3000) g;
        INSERT INTO plain VALUES (1), (2);
        """,
        dbname,
    )
    env = script_env(pg, base_env, dbname, backup_dir)
    assert run_script("backup.sh", env).returncode == 0
    restore = restore_copy(pg, env, dbname)
    assert "rows of 1 of 1 tables counted as they loaded" in restore.stderr, restore.stderr


def test_a_name_that_fakes_a_finished_item_cannot_fail_the_restore(
    pg: LocalPostgres, base_env: dict[str, str], dbname: str, backup_dir: Path
) -> None:
    """pg_restore -v prints names as they are: a table named with a line break and a copy of
    another table's "finished item" line reports that table loaded before its data is. An item
    reported finished twice is not trusted: the check counts it."""
    pg.psql(f'CREATE DATABASE "{dbname}"')
    pg.psql(
        """
        CREATE TABLE big (id int);
        INSERT INTO big SELECT g FROM generate_series(1, 200000) g;
        CREATE TABLE decoy (id int);
        """,
        dbname,
    )
    env = script_env(pg, base_env, dbname, backup_dir)
    assert run_script("backup.sh", env).returncode == 0
    listing = subprocess.run(
        [str(pg.bindir / "pg_restore"), "--list", str(latest_set(backup_dir, dbname) / "dump")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    item = re.search(r"^(\d+); \d+ \d+ TABLE DATA public big ", listing, re.MULTILINE)
    assert item is not None
    fake = f"x\npg_restore: finished item {item.group(1)} TABLE DATA public big postgres"
    pg.psql(f'ALTER TABLE decoy RENAME TO "{fake}"', dbname)  # (the dump ids follow the oids)
    assert run_script("backup.sh", env).returncode == 0
    relisted = subprocess.run(
        [str(pg.bindir / "pg_restore"), "--list", str(latest_set(backup_dir, dbname) / "dump")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert f"{item.group(1)}; 0 " in relisted and "TABLE DATA public big " in relisted
    restore = restore_copy(pg, env, dbname)
    counted = re.findall(r"rows of \d+ of \d+ tables counted as they loaded", restore.stderr)
    # big was reported finished twice; the decoy's list entry has a space for its line break.
    assert counted == ["rows of 0 of 2 tables counted as they loaded"], restore.stderr
