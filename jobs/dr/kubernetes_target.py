"""The rebuild's steps against a new cluster: Pulumi brings the stack up there, the Kubernetes
backend fetches, restores and verifies with Jobs made from the stack's own CronJob.

The app's Deployments are held at 0 replicas from right after `up` until the restore is verified,
so no app pod writes into (or migrates) an empty database; the replica counts found after `up`
are recorded in the resume state and given back at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobs.backends.base import Backend
from jobs.dr.checks import newest_before
from jobs.dr.flow import Step
from jobs.dr.pulumi_stack import KUBECONFIG_KEY, StackEngine
from jobs.dr.state import RebuildState
from jobs.errors import ExitCode, PgBackupError
from jobs.ui import info

# How long `wait_ready` waits for PostgreSQL in the new cluster (its volume may be provisioned,
# its image pulled): well inside the 1 h RTO, long enough for a slow cloud.
READY_TIMEOUT_SECONDS = 20 * 60


@dataclass
class KubernetesRebuild:
    stack: str
    database: str
    kubeconfig: Path
    engine: StackEngine
    backend_factory: Callable[[], Backend]  # built lazily: the cluster exists only after `up`
    ready_probe: Callable[[], bool]  # True once PostgreSQL accepts connections
    postgres_label: str  # "vocab-app-postgres:5432 in namespace x", for messages
    oidc_issuer: str | None = None
    oidc_provider_arn: str | None = None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    _backend: Backend | None = field(default=None, init=False)

    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = self.backend_factory()
        return self._backend

    # -- steps -------------------------------------------------------------------------------
    def select(self, state: RebuildState) -> str:
        return f"stack {self.engine.select()} selected"

    def configure(self, state: RebuildState) -> str:
        try:
            kubeconfig = self.kubeconfig.read_text(encoding="utf-8")
        except OSError as error:
            raise PgBackupError(
                f"cannot read the new cluster's kubeconfig {self.kubeconfig} ({error})",
                "pass --kubeconfig with the path of the new cluster's kubeconfig",
                ExitCode.USAGE,
            ) from error
        self.engine.set_config(KUBECONFIG_KEY, kubeconfig, secret=True)
        changed = [KUBECONFIG_KEY]
        # IRSA trusts one cluster's OIDC issuer: the new cluster has a new one.
        if self.oidc_issuer:
            self.engine.set_config(
                "pgbackup:offsite.credentials.oidcIssuer", self.oidc_issuer, path=True
            )
            changed.append("offsite.credentials.oidcIssuer")
        if self.oidc_provider_arn:
            self.engine.set_config(
                "pgbackup:offsite.credentials.oidcProviderArn", self.oidc_provider_arn, path=True
            )
            changed.append("offsite.credentials.oidcProviderArn")
        return "stack config points at the new cluster (" + ", ".join(changed) + ")"

    def up(self, state: RebuildState) -> str:
        lines: list[str] = []

        def relay(line: str) -> None:
            lines.append(line)
            info(f"    | {line.rstrip()}")

        outputs = self.engine.up(relay)
        return f"pulumi up done ({len(outputs)} stack outputs)"

    def _hold(self, state: RebuildState) -> dict[str, int]:
        """Scale the app's Deployments to 0, their counts recorded first (and a count an earlier
        try recorded kept: that try may have scaled some to 0 before it failed)."""
        backend = self.backend()
        # Only the Deployments already installed (a chart may be half-way in): they can write.
        found = backend.app_replicas(missing_ok=True)
        replicas = dict(state.facts.get("app_replicas") or {})
        for name, count in found.items():
            if count or name not in replicas:
                replicas[name] = count
        state.facts["app_replicas"] = replicas
        state.save()
        backend.scale_app({name: 0 for name in found})
        return replicas

    def hold_app(self, state: RebuildState) -> str:
        # The backup CronJob `up` declared would, if its schedule came round now, take a set of
        # the empty server and make it the newest offsite: suspended until the data is back.
        # (What a first try found is kept: a retry finds them suspended by that try.)
        before = self.backend().suspend_backups(self.database, True)
        state.facts.setdefault("backups_suspended", before)
        state.save()
        replicas = self._hold(state)
        if not replicas:
            return (
                "no app Deployment in the namespace yet (one that appears later is held "
                "before the restore)"
            )
        return "app held at 0 replicas: " + ", ".join(f"{n} (was {r})" for n, r in replicas.items())

    def wait_ready(self, state: RebuildState) -> str:
        deadline = self.clock() + READY_TIMEOUT_SECONDS
        while not self.ready_probe():
            if self.clock() >= deadline:
                raise PgBackupError(
                    f"PostgreSQL ({self.postgres_label}) did not accept connections within "
                    f"{READY_TIMEOUT_SECONDS // 60} min",
                    "install the app's chart with its database in the new cluster if it is not "
                    "there (the guide's `helm install`; dr-rebuild declares only the backup "
                    "side), check its pods (kubectl get pods, describe), then re-run dr-rebuild",
                    ExitCode.UNREACHABLE,
                )
            self.sleep(5)
        return f"PostgreSQL accepts connections ({self.postgres_label})"

    def fetch(self, state: RebuildState) -> str:
        backend = self.backend()
        chosen = newest_before(
            backend.list_sets(self.database, "offsite"), self.database, state.incident_at
        )
        backup_id = backend.fetch(self.database, chosen.id)
        state.facts["backup_id"] = backup_id
        state.facts["set_finished_at"] = chosen.finished_at
        return (
            f"set {backup_id} (the newest verified offsite one from before the loss) fetched "
            "onto the volume (reader role)"
        )

    def restore(self, state: RebuildState) -> str:
        backup_id = str(state.facts["backup_id"])
        backend = self.backend()
        # Again: the app's chart may have been installed since the hold (the guide's order, or a
        # re-run after wait_ready asked for it); nothing may write while the data comes back.
        self._hold(state)
        prepared = backend.restore_prepare(self.database, backup_id)
        result = backend.restore_swap(prepared)
        # The checks against the manifest ran in the prepare step (tables, exact row counts);
        # the swap only renamed.
        state.facts["restore"] = {
            "status": result.summary.get("status"),
            "tables": prepared.summary.get("tables"),
            "row_counts": prepared.summary.get("row_counts"),
        }
        return f"set {backup_id} restored into {self.database}"

    def verify(self, state: RebuildState) -> str:
        backup_id = str(state.facts["backup_id"])
        checked = self.backend().verify(self.database, backup_id, "volume")
        restore: dict[str, Any] = state.facts.get("restore") or {}
        # 0 tables is a database without tables, as its manifest says; None: no check reported.
        tables_checked = restore.get("tables") is not None
        if not checked.ok or restore.get("status") != "restored" or not tables_checked:
            raise PgBackupError(
                f"verification of the restored {self.database} failed (set {backup_id}: "
                f"{'checksums ok' if checked.ok else 'checksums differ'}, restore "
                f"{restore.get('status') or 'not reported'}, "
                f"{'tables checked' if tables_checked else 'no check of its tables'})",
                "read the restore Job's log; the set is kept on the volume for another try",
                ExitCode.CORRUPT,
            )
        return (
            f"set {backup_id} verified; the restore checked its {restore['tables']} tables "
            f"against the manifest (row counts: {restore.get('row_counts') or 'none'})"
        )

    def release_app(self, state: RebuildState) -> str:
        # Backups resume (unless the stack had them suspended): the next one is of the real data.
        self.backend().suspend_backups(self.database, bool(state.facts.get("backups_suspended")))
        replicas: dict[str, int] = dict(state.facts.get("app_replicas") or {})
        if not replicas:
            return "no app Deployment to scale back"
        self.backend().scale_app(replicas)
        return "app scaled back: " + ", ".join(f"{n}={r}" for n, r in replicas.items())

    def steps(self) -> list[Step]:
        return [
            Step("select", f"select Pulumi stack {self.stack} (Automation API)", self.select),
            Step(
                "configure",
                f"set {KUBECONFIG_KEY} (secret) to {self.kubeconfig}",
                self.configure,
            ),
            Step("up", "pulumi up: namespace objects, volume, CronJob, bucket access", self.up),
            Step(
                "hold_app",
                "suspend the backup CronJob and scale the app's Deployments to 0 until the restore",
                self.hold_app,
            ),
            Step("wait_ready", "wait until PostgreSQL accepts connections", self.wait_ready),
            Step(
                "fetch",
                "fetch the newest verified offsite set from before the loss (read-only role)",
                self.fetch,
            ),
            Step("restore", f"restore it into {self.database}", self.restore),
            Step("verify", "verify the set and the restore's row counts", self.verify),
            Step(
                "release_app",
                "resume the backups and scale the app back to its recorded replicas",
                self.release_app,
            ),
        ]
