"""Shared fixtures: the real things the tests start (a PostgreSQL server, moto's S3 server)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobs.local.postgres import LocalPostgres
from jobs.local.s3 import LocalS3

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "jobs" / "scripts"


@pytest.fixture(scope="session")
def pg() -> Iterator[LocalPostgres]:
    """One throwaway PostgreSQL server for the session; tests use databases of their own."""
    server = LocalPostgres().init()
    server.start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def s3() -> Iterator[LocalS3]:
    """moto's S3 server on 127.0.0.1 for the session; tests use buckets of their own."""
    with LocalS3() as server:
        yield server


@pytest.fixture
def bucket(s3: LocalS3) -> str:
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(name)
    return name


@pytest.fixture
def dbname(pg: LocalPostgres) -> Iterator[str]:
    """A fresh, empty database name unique to the test (dropped afterwards with its leftovers)."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    yield name
    # The name is ours (hex), not input: safe to interpolate.
    leftovers = pg.psql(
        f"SELECT datname FROM pg_database WHERE datname LIKE '{name}%'"  # noqa: S608
    ).split()
    for db in leftovers:
        pg.psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


@pytest.fixture
def base_env(pg: LocalPostgres) -> dict[str, str]:
    """A clean process environment with the PostgreSQL binaries first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_", "S3_"))}
    env["PATH"] = f"{pg.bindir}{os.pathsep}{env.get('PATH', '')}"
    return env
