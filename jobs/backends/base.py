"""The backend API every command (and `drill`, `dr_rebuild`, `demo`) builds on.

A backend carries out the in-container steps (`jobs/scripts/*.sh`) somewhere:
- `LocalBackend` runs them as subprocesses here, against libpq's PG* variables and an S3 endpoint;
- `KubernetesBackend` runs them as Jobs made from the stack's CronJob pod template.

Vocabulary:
- `db` is a database name as configured in the stack (`StackContext.databases[i].name`).
- `backup_id` is a set's id (`20260119t020000z`), `"latest"` (newest verified set), or a legacy
  `*.sql.gz` file name (restorable by explicit name only).
- `where` / `source` is `"volume"` (the backup PVC, or `BACKUP_DIR` locally) or `"offsite"` (S3).
- `source_stack`: restore/fetch another stack's offsite sets, read-only, when this stack's
  `crossStackRead` grants it (`StackContext.grant_for` raises a CONFIG error otherwise).

Every method raises `jobs.errors.PgBackupError` (cause, fix, named exit code) on failure; a step's
own exit code is relayed with the same meaning. Progress goes to stderr; results are returned.

Restore is split so the caller controls the downtime window:

    prepared = backend.restore_prepare(db, backup_id)      # side database; the app keeps serving
    replicas = backend.app_replicas()                      # record
    backend.scale_app({name: 0 for name in replicas})
    try:
        result = backend.restore_swap(prepared)            # the only downtime: a rename
    finally:
        backend.scale_app(replicas)                        # back to what was recorded, always
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

Where = Literal["volume", "offsite"]
WHERES: tuple[Where, ...] = ("volume", "offsite")


@dataclass(frozen=True)
class BackupSet:
    """One set as listed: on the volume or offsite."""

    database: str
    id: str
    bytes: int
    status: str  # "verified" | "failed" | "incomplete"
    finished_at: str  # ISO-8601 UTC, "" when unknown
    where: Where

    @property
    def verified(self) -> bool:
        return self.status == "verified"


@dataclass(frozen=True)
class BackupResult:
    database: str
    id: str
    bytes: int
    seconds: float
    status: str
    path: str
    log: str = ""  # where the step's log is (a file locally, a Job name on Kubernetes)


@dataclass(frozen=True)
class VerifyResult:
    database: str
    id: str
    where: Where
    ok: bool
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PreparedRestore:
    """A side database restored and checked, ready for the swap."""

    database: str  # the live database it will replace (or the new database with `target`)
    id: str
    side_database: str
    target: str | None = None  # set: restored into this new database, nothing to swap
    source_database: str | None = None  # the set's database when not `database` (other stack)
    summary: dict[str, Any] = field(default_factory=dict)
    source_stack: str | None = None  # the stack whose set it is, when not this one


@dataclass(frozen=True)
class RestoreResult:
    database: str
    id: str
    kept_database: str  # the previous live database, kept as `<db>__pre_restore_<id>`
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DownloadResult:
    database: str
    id: str
    path: Path
    bytes: int
    files: int


@dataclass(frozen=True)
class StatusReport:
    database: str
    schedule: str  # "" when there is no CronJob (local)
    suspended: bool | None
    last_success: str  # ISO-8601 or ""
    last_failure: str
    newest_volume: BackupSet | None
    newest_offsite: BackupSet | None
    volume_size_bytes: int | None
    volume_used_bytes: int | None
    active_jobs: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    # Other folders of the volume holding sets: (folder, sets, bytes). `.stacks/<stack>/<db>` are
    # rehearsal copies of another stack's sets; any other is another database's folder.
    other_folders: tuple[tuple[str, int, int], ...] = ()
    # The drill CronJob's own record (last success, last failure; "" when none), where the
    # backend has one (Kubernetes, when the stack has a drill); None: see `pgbackup drill`'s file.
    drill_runs: tuple[str, str] | None = None


class Backend(Protocol):
    """What a command needs from wherever the steps run. See the module docstring."""

    stack_label: str  # how the backend names where it runs, for plans ("namespace x", "local")

    def run_backup(self, db: str, keep_all: bool = False) -> BackupResult:
        """A new verified set of `db` on the volume (refuses with LOCKED if one is running).
        `keep_all`: delete no old set afterwards (the backup a restore takes first must not
        remove the set about to be restored)."""
        ...

    def list_sets(self, db: str | None, where: Where | None = None) -> list[BackupSet]:
        """Sets of `db` (all configured databases if None), newest first, on one or both places."""
        ...

    def resolve(
        self, db: str, backup_id: str, where: Where, source_stack: str | None = None
    ) -> str:
        """The concrete id `backup_id` names (`latest` -> newest verified; NOT_FOUND otherwise)."""
        ...

    def verify(self, db: str, backup_id: str, where: Where = "volume") -> VerifyResult:
        """Checksums and archive listing of a set (offsite: fetched to scratch space first)."""
        ...

    def fetch(
        self,
        db: str,
        backup_id: str,
        source_stack: str | None = None,
        source_database: str | None = None,
    ) -> str:
        """Bring an offsite set onto `db`'s volume (checksums verified); returns its id.
        `source_database`: the set's database name when it is not `db` (another stack's)."""
        ...

    def restore_prepare(
        self,
        db: str,
        backup_id: str,
        target: str | None = None,
        source_database: str | None = None,
        source_stack: str | None = None,
    ) -> PreparedRestore:
        """Restore a set from the volume into a side database (or into `target`, a new database);
        the live database and the app are untouched. `source_database` names the set's database
        when it differs from `db`; `source_stack`, the stack it was fetched from (another stack's
        sets are kept apart from this stack's on the volume)."""
        ...

    def restore_swap(self, prepared: PreparedRestore) -> RestoreResult:
        """Swap the prepared side database in; the old one is kept as `<db>__pre_restore_<id>`."""
        ...

    def app_replicas(self, missing_ok: bool = False) -> dict[str, int]:
        """Current replica counts of the stack's app Deployments (NOT_FOUND when one is missing;
        with `missing_ok`, those that exist)."""
        ...

    def scale_app(self, replicas_by_deployment: dict[str, int]) -> None:
        """Scale the named Deployments (waits until scaled-down pods are gone)."""
        ...

    def suspend_backups(self, db: str, suspended: bool) -> bool:
        """Suspend (or resume) the scheduled backups of `db`; returns whether they were
        suspended before. Without a scheduler of its own (local), nothing to do."""
        ...

    def download(
        self, db: str, backup_id: str, to_dir: Path, source_stack: str | None = None
    ) -> DownloadResult:
        """Copy an offsite set to `to_dir/<id>/`, checksums verified, never a partial file under
        a final name."""
        ...

    def status(self, db: str) -> StatusReport:
        """Schedule, last runs, newest verified sets and volume usage."""
        ...
