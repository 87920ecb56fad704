"""Helpers of the operator CLI's tests: running `pgbackup` as an operator would, and looking."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pytest

from jobs.cli import main
from jobs.local.postgres import LocalPostgres
from jobs.local.s3 import LocalS3


class TypedInput(io.StringIO):
    """stdin that says it is a terminal, holding what the operator types."""

    def isatty(self) -> bool:
        return True


@dataclass
class Local:
    pg: LocalPostgres
    s3: LocalS3
    db: str
    bucket: str
    backup_dir: Path
    capsys: pytest.CaptureFixture[str]
    monkeypatch: pytest.MonkeyPatch

    def with_offsite(self) -> Local:
        """Turn the offsite copy on: backups are uploaded to the test's bucket."""
        self.monkeypatch.setenv("S3_BUCKET", self.bucket)
        return self

    def run(self, *argv: str, typed: str | None = None, stack: str | None = None) -> int:
        """`pgbackup [--stack S] --local ARGV`; `typed`: what is typed at a terminal."""
        if typed is not None:
            self.monkeypatch.setattr("sys.stdin", TypedInput(typed + "\n"))
        prefix = ["--stack", stack] if stack else []
        return main([*prefix, "--local", *argv])

    def output(self) -> tuple[str, str]:
        captured = self.capsys.readouterr()
        return captured.out, captured.err

    def sql(self, query: str, db: str | None = None) -> str:
        return self.pg.psql(query, db or self.db)

    def databases(self) -> list[str]:
        # Names come from the test's own fixture (t_<hex>), never from input.
        return self.pg.psql(
            f"SELECT datname FROM pg_database WHERE datname LIKE '{self.db}%' ORDER BY 1"  # noqa: S608
        ).split()


def seed(pg: LocalPostgres, db: str, rows: int = 50) -> None:
    pg.psql(f'CREATE DATABASE "{db}"')
    fill = f"INSERT INTO words SELECT i, 'word ' || i FROM generate_series(1, {int(rows)}) AS i"  # noqa: S608
    pg.psql(f"CREATE TABLE words (id int PRIMARY KEY, term text NOT NULL); {fill};", db)
