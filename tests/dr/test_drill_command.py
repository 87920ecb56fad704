"""`pgbackup --local drill`: the set restores on a throwaway server, the live one is never touched,
and the result is recorded where `status` can show it."""

from __future__ import annotations

import json

import pytest
from dr_helpers import BackedUp

from jobs.cli import main as pgbackup
from jobs.commands.drill import RESULT_FILE
from jobs.local.postgres import LocalPostgres


def _use_server(monkeypatch: pytest.MonkeyPatch, pg: LocalPostgres, database: str) -> None:
    for key, value in pg.env(database).items():
        monkeypatch.setenv(key, value)


def test_drill_passes_records_its_result_and_leaves_the_live_server_alone(
    pg: LocalPostgres,
    backed_up: BackedUp,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _use_server(monkeypatch, pg, backed_up.database)
    databases = pg.psql("SELECT datname FROM pg_database ORDER BY 1")
    code = pgbackup(
        [
            "--local",
            "drill",
            "--database",
            backed_up.database,
            "--backup-dir",
            str(backed_up.backup_dir),
        ]
    )
    assert code == 0
    record = json.loads((backed_up.backup_dir / backed_up.database / RESULT_FILE).read_text())
    assert record["status"] == "passed" and record["id"] == backed_up.id
    assert pg.psql("SELECT datname FROM pg_database ORDER BY 1") == databases
    local = ["--local", "status", "--database", backed_up.database]
    capsys.readouterr()
    assert pgbackup([*local, "--backup-dir", str(backed_up.backup_dir)]) == 0
    assert "Last drill:       passed" in capsys.readouterr().out


def test_a_corrupt_set_fails_the_drill_with_exit_65_and_records_the_failure(
    pg: LocalPostgres,
    backed_up: BackedUp,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _use_server(monkeypatch, pg, backed_up.database)
    (backed_up.set_dir / "globals.sql").write_text("-- tampered\n")
    code = pgbackup(
        [
            "--local",
            "drill",
            "--database",
            backed_up.database,
            "--backup-dir",
            str(backed_up.backup_dir),
        ]
    )
    assert code == 65
    assert "CORRUPT" in capsys.readouterr().err
    record = json.loads((backed_up.backup_dir / backed_up.database / RESULT_FILE).read_text())
    assert record["status"] == "failed" and record["exit_code"] == 65
    local = ["--local", "status", "--database", backed_up.database]
    assert pgbackup([*local, "--backup-dir", str(backed_up.backup_dir)]) == 0
    assert "Last drill:       FAILED" in capsys.readouterr().out
