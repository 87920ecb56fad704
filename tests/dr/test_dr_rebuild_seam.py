"""dr-rebuild at the Automation API seam: the Pulumi engine and the cluster are fakes that record
what they were asked; everything else (ordering, resume state, report) is the real code."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jobs.backends.base import PreparedRestore, RestoreResult, VerifyResult
from jobs.commands import dr_rebuild
from jobs.dr.flow import run_steps
from jobs.dr.kubernetes_target import KubernetesRebuild
from jobs.dr.pulumi_stack import KUBECONFIG_KEY
from jobs.dr.state import RebuildState
from jobs.errors import ExitCode, PgBackupError

KUBECONFIG_TEXT = "apiVersion: v1\nkind: Config\nclusters: []  # the new cluster\n"


class FakeEngine:
    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.config: dict[str, tuple[str, bool, bool]] = {}

    def select(self) -> str:
        self.events.append("select")
        return "organization/pgbackup/staging"

    def set_config(self, key: str, value: str, secret: bool = False, path: bool = False) -> None:
        self.events.append(f"set_config {key}")
        self.config[key] = (value, secret, path)

    def up(self, on_output: Callable[[str], Any]) -> dict[str, Any]:
        self.events.append("up")
        on_output("Updating (staging)")
        return {"namespace": "vocab-app-staging"}


class FakeCluster:
    """The Kubernetes backend's side of the rebuild, recording calls; fails where told to."""

    def __init__(self, events: list[str], fail_fetch: int = 0) -> None:
        self.events = events
        self.fail_fetch = fail_fetch

    def app_replicas(self) -> dict[str, int]:
        return {"vocab-app-api": 3}

    def scale_app(self, replicas: dict[str, int]) -> None:
        self.events.append("scale " + ",".join(f"{k}={v}" for k, v in replicas.items()))

    def fetch(self, db: str, backup_id: str, source_stack: str | None = None) -> str:
        self.events.append(f"fetch {backup_id}")
        if self.fail_fetch:
            self.fail_fetch -= 1
            raise PgBackupError("S3 unreachable", "retry", ExitCode.UNREACHABLE)
        return "20260119t020000z"

    def list_sets(self, db: str | None, where: str | None = None) -> list[Any]:
        from jobs.backends.base import BackupSet

        return [
            BackupSet(
                db or "", "20260119t020000z", 1, "verified", "2026-01-19T02:01:00Z", "offsite"
            )
        ]

    def restore_prepare(self, db: str, backup_id: str, **_: Any) -> PreparedRestore:
        self.events.append(f"restore_prepare {backup_id}")
        return PreparedRestore(db, backup_id, f"{db}__restore_{backup_id}")

    def restore_swap(self, prepared: PreparedRestore) -> RestoreResult:
        self.events.append("restore_swap")
        return RestoreResult(
            prepared.database, prepared.id, "", {"status": "restored", "tables": 4}
        )

    def verify(self, db: str, backup_id: str, where: str = "volume") -> VerifyResult:
        self.events.append(f"verify {backup_id}")
        return VerifyResult(db, backup_id, "volume", True)


def _rebuild(
    tmp_path: Path, events: list[str], cluster: FakeCluster, ready_after: int = 2
) -> tuple[KubernetesRebuild, FakeEngine]:
    kubeconfig = tmp_path / "new-cluster.yaml"
    kubeconfig.write_text(KUBECONFIG_TEXT)
    engine = FakeEngine(events)
    probes = {"n": 0}

    def probe() -> bool:
        probes["n"] += 1
        ready = probes["n"] > ready_after
        events.append(f"probe {'ready' if ready else 'not ready'}")
        return ready

    rebuild = KubernetesRebuild(
        stack="staging",
        database="vocab_app_staging",
        kubeconfig=kubeconfig,
        engine=engine,
        backend_factory=lambda: cluster,  # type: ignore[arg-type, return-value]
        ready_probe=probe,
        postgres_label="vocab-app-postgres:5432 in vocab-app-staging",
        sleep=lambda _: None,
    )
    return rebuild, engine


def test_the_rebuild_selects_points_at_the_new_cluster_brings_it_up_then_restores(
    tmp_path: Path,
) -> None:
    events: list[str] = []
    rebuild, engine = _rebuild(tmp_path, events, FakeCluster(events))
    state = RebuildState(tmp_path / "dr.json", "staging", incident_at=0.0)
    run_steps(rebuild.steps(), state)

    assert (
        events.index("select") < events.index(f"set_config {KUBECONFIG_KEY}") < events.index("up")
    )
    value, secret, _ = engine.config[KUBECONFIG_KEY]
    assert value == KUBECONFIG_TEXT and secret
    # The app is held at 0 from right after `up` until the restore is verified, then given back.
    assert events.index("up") < events.index("scale vocab-app-api=0") < events.index("fetch latest")
    assert events[-1] == "scale vocab-app-api=3"
    # Nothing is restored before PostgreSQL accepts connections.
    ready = events.index("probe ready")
    assert all(e == "probe not ready" for e in events[ready - 2 : ready])
    assert ready < events.index("restore_prepare 20260119t020000z") < events.index("restore_swap")
    assert events.index("restore_swap") < events.index("verify 20260119t020000z")
    assert state.facts["backup_id"] == "20260119t020000z"


def test_a_rerun_after_a_failure_skips_the_steps_already_done(tmp_path: Path) -> None:
    events: list[str] = []
    cluster = FakeCluster(events, fail_fetch=1)
    rebuild, _ = _rebuild(tmp_path, events, cluster)
    state_file = tmp_path / "dr.json"
    first = RebuildState.load_or_new(state_file, "staging", incident_at=100.0)
    with pytest.raises(PgBackupError):
        run_steps(rebuild.steps(), first)
    assert events.count("up") == 1

    events.clear()
    rebuild, _ = _rebuild(tmp_path, events, cluster, ready_after=0)
    again = RebuildState.load_or_new(state_file, "staging", incident_at=999.0)
    run_steps(rebuild.steps(), again)
    assert "select" not in events and "up" not in events
    assert not any(e.startswith("probe") for e in events)  # readiness was already established
    assert events[0] == "fetch latest"
    assert "restore_swap" in events
    # The RTO clock keeps the first run's zero, and the held replicas survive the restart.
    assert again.incident_at == 100.0
    assert events[-1] == "scale vocab-app-api=3"


def test_dry_run_prints_the_plan_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events: list[str] = []
    kubeconfig = tmp_path / "new.yaml"
    kubeconfig.write_text(KUBECONFIG_TEXT)
    state_file = tmp_path / "state" / "dr-staging.json"
    args = argparse.Namespace(
        stack="staging",
        kubeconfig=str(kubeconfig),
        context=None,
        database=None,
        dry_run=True,
        state_file=state_file,
        fresh=False,
        since=None,
        oidc_issuer=None,
        oidc_provider_arn=None,
        dns_name="",
    )
    code = dr_rebuild.run(args, engine=FakeEngine(events))
    assert code == 0
    assert events == []
    assert not state_file.exists()
    plan = capsys.readouterr().err
    for step in ("select", "configure", "up", "wait_ready", "fetch", "restore", "verify"):
        assert step in plan
    assert str(state_file) in plan


def test_a_secret_config_value_reaches_pulumi_on_stdin_never_in_argv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ps` shows every process's argv: the new cluster's kubeconfig must not be there."""
    from types import SimpleNamespace

    from jobs.dr.pulumi_stack import AutomationStack

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "pulumi"
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/argv\ncat > {tmp_path}/stdin\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    engine = AutomationStack("production", tmp_path)
    engine._stack = SimpleNamespace(name="organization/pgbackup/production")

    engine.set_config(KUBECONFIG_KEY, "apiVersion: v1\ntoken: s3cr3t\n", secret=True)

    argv = (tmp_path / "argv").read_text()
    assert argv.split() == [
        "config",
        "set",
        "--secret",
        "--stack",
        "organization/pgbackup/production",
        KUBECONFIG_KEY,
    ]
    assert "s3cr3t" in (tmp_path / "stdin").read_text()
