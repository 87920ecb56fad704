"""The rebuild's steps on this machine (the demo, and tests): "up" starts a new PostgreSQL server
instead of a cluster, the rest runs the very same scripts through the local backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from jobs.backends.local import LocalBackend, LocalSettings
from jobs.dr.checks import compare_row_counts, newest_before, read_manifest
from jobs.dr.flow import Step
from jobs.dr.state import RebuildState
from jobs.errors import ExitCode, PgBackupError
from jobs.local.postgres import LocalPostgres


@dataclass
class LocalRebuild:
    database: str
    backup_dir: Path  # the new, empty volume the set is fetched onto
    bucket: str
    prefix: str
    s3_env: dict[str, str]  # the reader's credentials and S3_ENDPOINT_URL
    base_env: dict[str, str]  # PATH and the like, without any PG*/AWS_*/S3_* variable
    server: LocalPostgres | None = field(default=None, init=False)

    def backend(self) -> LocalBackend:
        if self.server is None:
            raise PgBackupError(
                "the local rebuild lost its server (it only lives as long as this process)",
                "re-run with --fresh",
                ExitCode.STEP_FAILED,
            )
        env = {**self.base_env, **self.server.env(self.database), **self.s3_env}
        settings = LocalSettings(
            env=env,
            backup_dir=str(self.backup_dir),
            bucket=self.bucket,
            prefix=self.prefix,
            endpoint_url=self.s3_env.get("S3_ENDPOINT_URL", ""),
        )
        return LocalBackend(settings)

    # -- steps -------------------------------------------------------------------------------
    def up(self, state: RebuildState) -> str:
        self.server = LocalPostgres().init()
        self.server.start()
        return f"new PostgreSQL server on 127.0.0.1:{self.server.port}"

    def wait_ready(self, state: RebuildState) -> str:
        assert self.server is not None
        self.server.wait_ready()
        version = self.server.psql("SHOW server_version")
        return f"PostgreSQL {version} accepts connections"

    def fetch(self, state: RebuildState) -> str:
        backend = self.backend()
        chosen = newest_before(
            backend.list_sets(self.database, "offsite"), self.database, state.incident_at
        )
        backup_id = backend.fetch(self.database, chosen.id)
        manifest = read_manifest(self.backup_dir / self.database / backup_id)
        state.facts["backup_id"] = backup_id
        state.facts["set_finished_at"] = str(manifest.get("finished_at", ""))
        return f"set {backup_id} fetched from s3://{self.bucket}/{self.prefix}, checksums verified"

    def restore(self, state: RebuildState) -> str:
        backup_id = str(state.facts["backup_id"])
        backend = self.backend()
        # A new server has no such database: the swap only renames the side database into place.
        prepared = backend.restore_prepare(self.database, backup_id)
        backend.restore_swap(prepared)
        return f"set {prepared.id} restored into {self.database}"

    def verify(self, state: RebuildState) -> str:
        backup_id = str(state.facts["backup_id"])
        assert self.server is not None
        manifest = read_manifest(self.backup_dir / self.database / backup_id)
        env = dict(self.base_env)
        psql = [
            str(self.server.bindir / "psql"),
            "-h",
            str(self.server.sockets),
            "-p",
            str(self.server.port),
            "-U",
            "postgres",
        ]
        return compare_row_counts(manifest, psql, env, self.database)

    def steps(self) -> list[Step]:
        return [
            Step("up", "start a new PostgreSQL server (locally, in place of a cluster)", self.up),
            Step("wait_ready", "wait until PostgreSQL accepts connections", self.wait_ready),
            Step(
                "fetch",
                "fetch the newest verified offsite set from before the loss (reader credentials)",
                self.fetch,
            ),
            Step("restore", f"restore it into {self.database}", self.restore),
            Step("verify", "count every table against the set's manifest", self.verify),
        ]

    def close(self) -> None:
        if self.server is not None:
            self.server.destroy()
            self.server = None
