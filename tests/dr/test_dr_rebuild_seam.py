"""dr-rebuild at the Automation API seam: the Pulumi engine and the cluster are fakes that record
what they were asked; everything else (ordering, resume state, report) is the real code."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from datetime import UTC, datetime
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


# The loss: after the nightly set of 19 January, before the set the new cluster's own CronJob
# took of its fresh, empty server while the rebuild ran.
INCIDENT = datetime(2026, 1, 19, 9, 30, tzinfo=UTC).timestamp()
BEFORE, AFTER = "20260119t020000z", "20260119t100000z"


class FakeCluster:
    """The Kubernetes backend's side of the rebuild, recording calls; fails where told to. Its
    summaries are shaped as restore.sh prints them: the prepare step checks the tables, the swap
    only renames."""

    def __init__(
        self, events: list[str], fail_fetch: int = 0, fail_scale: str = "", tables: int | None = 4
    ) -> None:
        self.events = events
        self.fail_fetch = fail_fetch
        self.fail_scale = fail_scale  # a Deployment whose first scale-down fails
        self.tables = tables
        self.replicas = {"vocab-app-api": 3, "vocab-app-worker": 2}
        self.backups_suspended = False

    def app_replicas(self, missing_ok: bool = False) -> dict[str, int]:
        assert missing_ok  # the rebuild holds whatever of the app is installed
        return dict(self.replicas)

    def suspend_backups(self, db: str, suspended: bool) -> bool:
        self.events.append(f"backups {'suspended' if suspended else 'resumed'}")
        before, self.backups_suspended = self.backups_suspended, suspended
        return before

    def scale_app(self, replicas: dict[str, int]) -> None:
        self.events.append("scale " + ",".join(f"{k}={v}" for k, v in replicas.items()))
        for name, count in replicas.items():
            if name == self.fail_scale:
                self.fail_scale = ""
                raise PgBackupError(f"cannot scale {name}", "retry", ExitCode.UNREACHABLE)
            self.replicas[name] = count

    def fetch(self, db: str, backup_id: str, source_stack: str | None = None) -> str:
        self.events.append(f"fetch {backup_id}")
        if self.fail_fetch:
            self.fail_fetch -= 1
            raise PgBackupError("S3 unreachable", "retry", ExitCode.UNREACHABLE)
        return backup_id

    def list_sets(self, db: str | None, where: str | None = None) -> list[Any]:
        from jobs.backends.base import BackupSet

        return [
            BackupSet(db or "", AFTER, 1, "verified", "2026-01-19T10:00:30Z", "offsite"),
            BackupSet(db or "", BEFORE, 1, "verified", "2026-01-19T02:01:00Z", "offsite"),
        ]

    def restore_prepare(self, db: str, backup_id: str, **_: Any) -> PreparedRestore:
        self.events.append(f"restore_prepare {backup_id}")
        summary: dict[str, Any] = {"status": "prepared", "row_counts": "exact"}
        if self.tables is not None:  # None: a prepare step that reported no check
            summary["tables"] = self.tables
        return PreparedRestore(db, backup_id, f"{db}__restore_{backup_id}", summary=summary)

    def restore_swap(self, prepared: PreparedRestore) -> RestoreResult:
        self.events.append("restore_swap")
        summary = {"status": "restored", "tables": 0, "row_counts": "none"}
        return RestoreResult(prepared.database, prepared.id, "", summary)

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
    state = RebuildState(tmp_path / "dr.json", "staging", incident_at=INCIDENT)
    run_steps(rebuild.steps(), state)

    assert (
        events.index("select") < events.index(f"set_config {KUBECONFIG_KEY}") < events.index("up")
    )
    value, secret, _ = engine.config[KUBECONFIG_KEY]
    assert value == KUBECONFIG_TEXT and secret
    # The app is held at 0 from right after `up` until the restore is verified, then given back;
    # the backups meanwhile suspended, so no set of the empty server is taken.
    held = "scale vocab-app-api=0,vocab-app-worker=0"
    assert events.index("up") < events.index("backups suspended") < events.index(held)
    assert events.index(held) < events.index(f"fetch {BEFORE}")
    assert events[-2:] == ["backups resumed", "scale vocab-app-api=3,vocab-app-worker=2"]
    # Nothing is restored before PostgreSQL accepts connections.
    ready = events.index("probe ready")
    assert all(e == "probe not ready" for e in events[ready - 2 : ready])
    assert ready < events.index(f"restore_prepare {BEFORE}") < events.index("restore_swap")
    assert events.index("restore_swap") < events.index(f"verify {BEFORE}")
    # The set the new cluster took after the loss is never the one restored.
    assert state.facts["backup_id"] == BEFORE and f"fetch {AFTER}" not in events
    assert "4 tables" in state.steps["verify"].detail


def test_a_rerun_after_a_failure_skips_the_steps_already_done(tmp_path: Path) -> None:
    events: list[str] = []
    cluster = FakeCluster(events, fail_fetch=1)
    rebuild, _ = _rebuild(tmp_path, events, cluster)
    state_file = tmp_path / "dr.json"
    first = RebuildState.load_or_new(state_file, "staging", incident_at=INCIDENT)
    with pytest.raises(PgBackupError):
        run_steps(rebuild.steps(), first)
    assert events.count("up") == 1

    events.clear()
    rebuild, _ = _rebuild(tmp_path, events, cluster, ready_after=0)
    again = RebuildState.load_or_new(state_file, "staging", incident_at=INCIDENT + 999)
    run_steps(rebuild.steps(), again)
    assert "select" not in events and "up" not in events
    assert not any(e.startswith("probe") for e in events)  # readiness was already established
    assert events[0] == f"fetch {BEFORE}"
    assert "restore_swap" in events
    # The RTO clock keeps the first run's zero, and the held replicas survive the restart.
    assert again.incident_at == INCIDENT
    assert events[-1] == "scale vocab-app-api=3,vocab-app-worker=2"


def test_a_hold_that_failed_half_way_still_gives_every_deployment_its_replicas_back(
    tmp_path: Path,
) -> None:
    events: list[str] = []
    cluster = FakeCluster(events, fail_scale="vocab-app-worker")  # api is at 0 when it fails
    rebuild, _ = _rebuild(tmp_path, events, cluster, ready_after=0)
    state_file = tmp_path / "dr.json"
    with pytest.raises(PgBackupError):
        run_steps(rebuild.steps(), RebuildState.load_or_new(state_file, "staging", INCIDENT))
    assert cluster.replicas["vocab-app-api"] == 0

    run_steps(rebuild.steps(), RebuildState.load_or_new(state_file, "staging", INCIDENT))
    assert cluster.replicas == {"vocab-app-api": 3, "vocab-app-worker": 2}


def test_an_app_installed_after_the_hold_is_held_before_the_restore(tmp_path: Path) -> None:
    """The guide installs the chart; if that happens during the rebuild (wait_ready asks for
    it), the app must not write while the data comes back, and gets its replicas back after."""
    events: list[str] = []
    cluster = FakeCluster(events)
    cluster.replicas = {}  # nothing installed yet when the hold runs
    rebuild, _ = _rebuild(tmp_path, events, cluster, ready_after=0)
    steps = rebuild.steps()
    state = RebuildState(tmp_path / "dr.json", "staging", incident_at=INCIDENT)
    hold = next(i for i, step in enumerate(steps) if step.name == "hold_app")
    run_steps(steps[: hold + 1], state)
    cluster.replicas = {"vocab-app-api": 3}  # the chart, installed now

    run_steps(steps, state)
    assert events.index("scale vocab-app-api=0") < events.index(f"restore_prepare {BEFORE}")
    assert cluster.replicas == {"vocab-app-api": 3}


def test_starting_over_with_fresh_still_gives_the_held_app_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A --since too early fails at the fetch, after the hold; the fix the error gives is
    --fresh, which must not forget the counts recorded before the app was scaled to 0."""
    events: list[str] = []
    cluster = FakeCluster(events)
    monkeypatch.setattr(dr_rebuild.KubernetesRebuild, "backend", lambda self: cluster)
    monkeypatch.setattr(dr_rebuild.KubernetesRebuild, "wait_ready", lambda self, state: "ready")
    kubeconfig = _kubeconfig(tmp_path, "https://new.example")
    with pytest.raises(PgBackupError) as early:
        dr_rebuild.run(_args(tmp_path, kubeconfig, since="2026-01-19T01:00:00Z"), FakeEngine([]))
    assert early.value.code == ExitCode.NOT_FOUND
    assert cluster.replicas == {"vocab-app-api": 0, "vocab-app-worker": 0}

    assert dr_rebuild.run(_args(tmp_path, kubeconfig, fresh=True), FakeEngine([])) == 0
    assert cluster.replicas == {"vocab-app-api": 3, "vocab-app-worker": 2}
    assert cluster.backups_suspended is False  # resumed, as they were before the first try


def test_backups_suspended_by_the_stack_stay_suspended_after_the_rebuild(tmp_path: Path) -> None:
    events: list[str] = []
    cluster = FakeCluster(events)
    cluster.backups_suspended = True  # databases[].suspend in the stack file
    rebuild, _ = _rebuild(tmp_path, events, cluster, ready_after=0)
    run_steps(rebuild.steps(), RebuildState(tmp_path / "dr.json", "staging", INCIDENT))
    assert cluster.backups_suspended is True


def test_a_restore_that_checked_no_table_is_not_reported_verified(tmp_path: Path) -> None:
    events: list[str] = []
    rebuild, _ = _rebuild(tmp_path, events, FakeCluster(events, tables=None), ready_after=0)
    state = RebuildState(tmp_path / "dr.json", "staging", incident_at=INCIDENT)
    with pytest.raises(PgBackupError) as error:
        run_steps(rebuild.steps(), state)
    assert error.value.code == ExitCode.CORRUPT
    assert "no check of its tables" in error.value.message
    assert "release_app" not in state.steps  # the app stays held on an unverified database


def test_no_set_from_before_the_loss_is_a_clear_refusal(tmp_path: Path) -> None:
    events: list[str] = []
    rebuild, _ = _rebuild(tmp_path, events, FakeCluster(events), ready_after=0)
    early = datetime(2026, 1, 19, 1, 0, tzinfo=UTC).timestamp()  # before the nightly set
    with pytest.raises(PgBackupError) as error:
        run_steps(rebuild.steps(), RebuildState(tmp_path / "dr.json", "staging", early))
    assert error.value.code == ExitCode.NOT_FOUND and "--since" in error.value.fix
    assert not [e for e in events if e.startswith(("fetch", "restore"))]


def _args(tmp_path: Path, kubeconfig: Path, **extra: Any) -> argparse.Namespace:
    values: dict[str, Any] = {
        "stack": "staging",
        "kubeconfig": str(kubeconfig),
        "context": None,
        "database": None,
        "dry_run": False,
        "state_file": tmp_path / "state" / "dr-staging.json",
        "fresh": False,
        "since": "2026-01-19T09:30:00Z",
        "oidc_issuer": None,
        "oidc_provider_arn": None,
        "dns_name": "",
    }
    return argparse.Namespace(**{**values, **extra})


def _kubeconfig(tmp_path: Path, server: str) -> Path:
    path = tmp_path / f"{server.split('//')[1]}.yaml"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: new\n"
        f"clusters: [{{name: c, cluster: {{server: '{server}'}}}}]\n"
        "contexts: [{name: new, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {}}]\n"
    )
    return path


def test_a_finished_rebuild_or_another_clusters_is_never_resumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resumed, all steps would be skipped and the old timeline reported as this rebuild's."""
    events: list[str] = []
    cluster = FakeCluster(events)
    monkeypatch.setattr(dr_rebuild.KubernetesRebuild, "backend", lambda self: cluster, raising=True)
    monkeypatch.setattr(dr_rebuild.KubernetesRebuild, "wait_ready", lambda self, state: "ready")
    first = _kubeconfig(tmp_path, "https://first.example")
    second = _kubeconfig(tmp_path, "https://second.example")

    # A first rebuild into the first cluster stops at the fetch; a resume into another refuses.
    cluster.fail_fetch = 1
    with pytest.raises(PgBackupError):
        dr_rebuild.run(_args(tmp_path, first), engine=FakeEngine(events))
    with pytest.raises(PgBackupError) as other:
        dr_rebuild.run(_args(tmp_path, second), engine=FakeEngine(events))
    assert other.value.code == ExitCode.USAGE and "https://first.example" in other.value.message

    assert dr_rebuild.run(_args(tmp_path, first), engine=FakeEngine(events)) == 0
    with pytest.raises(PgBackupError) as finished:
        dr_rebuild.run(_args(tmp_path, first), engine=FakeEngine(events))
    assert finished.value.code == ExitCode.USAGE and "--fresh" in finished.value.fix

    events.clear()
    assert dr_rebuild.run(_args(tmp_path, second, fresh=True), engine=FakeEngine(events)) == 0
    assert "up" in events and f"restore_prepare {BEFORE}" in events


def test_the_rto_clock_starts_at_the_first_run_even_when_its_first_step_fails(
    tmp_path: Path,
) -> None:
    class FailingEngine(FakeEngine):
        def select(self) -> str:
            raise PgBackupError("the pulumi CLI is not installed", "install it", ExitCode.CONFIG)

    kubeconfig = _kubeconfig(tmp_path, "https://new.example")
    args = _args(tmp_path, kubeconfig, since=None)
    with pytest.raises(PgBackupError):
        dr_rebuild.run(args, engine=FailingEngine([]))
    saved = RebuildState.load_or_new(args.state_file, "staging", incident_at=1e12)
    assert saved.incident_at < 1e12 and not saved.steps


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


def test_fresh_carries_over_only_the_counts_of_the_same_unfinished_rebuild(tmp_path: Path) -> None:
    import json

    state_file = tmp_path / "dr.json"
    target = "vocab_app_staging on https://new.example"

    def saved(**changes: Any) -> dict[str, int]:
        payload = {
            "stack": "staging",
            "target": target,
            "finished_at": None,
            "facts": {"app_replicas": {"vocab-app-api": 3}},
            **changes,
        }
        state_file.write_text(json.dumps(payload))
        return dr_rebuild.held_facts(state_file, "staging", target).get("app_replicas", {})

    assert saved() == {"vocab-app-api": 3}
    assert saved(target="vocab_app_staging on https://old.example") == {}  # another cluster's
    assert saved(stack="production") == {}
    assert saved(finished_at=1.0) == {}  # given back already
    assert saved(facts={"app_replicas": {"vocab-app-api": None}}) == {}  # unreadable: nothing
    assert saved(facts=[]) == {}
