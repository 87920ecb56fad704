"""The pieces behind rows counted from the dump: a data file is counted only when it ends as
pg_dump ends a table's COPY data, and a table whose file was not counted is counted with
count(*) in the database instead of being left out."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from jobs.local.postgres import LocalPostgres

SCRIPTS = Path(__file__).resolve().parents[2] / "jobs" / "scripts"
LIBRARIES = ("common.sh", "pg.sh", "compress.sh")


def bash(script: str, *args: str) -> str:
    sources = " ".join(f'source "{SCRIPTS}/{name}";' for name in LIBRARIES)
    done = subprocess.run(
        ["bash", "-c", f"{sources} {script}", "bash", *args],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return done.stdout


def test_only_a_file_with_the_copy_trailer_gets_a_row_count(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    files = {
        "1.dat": b"a\tb\nc\\nd\t\\N\n\\.\n\n\n",  # two rows, the second with an escaped newline
        "2.dat": b"\\.\n\n\n",  # an empty table
        "3.dat": b"no trailer\n",  # not a table's COPY data (or cut short)
        "blob_16500.dat": b"\x00\x01large object",
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
        compress = 'ZSTD_LEVEL=1 DUMP_JOBS=1 compress_data_file "$1" "$2"'
        bash(compress, str(tmp_path / name), str(out))
        assert not (tmp_path / name).exists() and (tmp_path / f"{name}.zst").exists()
    rows = {name: (out / f"{name}.rows").read_text().strip() for name in files}
    assert rows == {"1.dat": "2", "2.dat": "0", "3.dat": "-", "blob_16500.dat": "-"}


def test_a_table_missing_from_the_counted_pairs_is_counted_in_the_database(
    pg: LocalPostgres, dbname: str
) -> None:
    pg.psql(f'CREATE DATABASE "{dbname}"')
    pg.psql(
        "CREATE TABLE counted (x int); CREATE TABLE not_counted (x int);"
        "INSERT INTO not_counted SELECT generate_series(1, 5)",
        dbname,
    )
    oid = pg.psql("SELECT 'counted'::regclass::oid", dbname)
    sql = bash('tables_sql counted "$1"', f"({oid}::oid, 42::bigint)")
    tables = json.loads(pg.psql(sql, dbname))
    assert tables == [
        {"schema": "public", "name": "counted", "rows": 42},
        {"schema": "public", "name": "not_counted", "rows": 5},
    ]
