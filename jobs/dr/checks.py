"""Which set a rebuild restores, and after the restore: does the database hold what the set's
manifest says it held?"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jobs.backends.base import BackupSet
from jobs.errors import ExitCode, PgBackupError
from jobs.ui import parse_time


def newest_before(sets: list[BackupSet], database: str, incident_at: float) -> BackupSet:
    """The newest verified set of `database` that finished before the incident. A set finished
    after it was taken after the loss (by the new cluster's own CronJob, against a fresh server,
    while the rebuild ran): restoring it would bring back an empty or half-migrated database and
    report a negative RPO as met."""
    before = [
        s
        for s in sets
        if s.database == database
        and s.verified
        and (finished := parse_time(s.finished_at or s.id)) is not None
        and finished.timestamp() <= incident_at
    ]
    if not before:
        when = datetime.fromtimestamp(incident_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        raise PgBackupError(
            f"no verified offsite set of {database} finished before the incident ({when})",
            "list them (pgbackup list --from offsite); if the loss happened later than that, "
            "re-run with --fresh --since <when it happened>",
            ExitCode.NOT_FOUND,
        )
    return max(before, key=lambda s: s.id)


def read_manifest(set_dir: Path) -> dict[str, Any]:
    path = set_dir / "manifest.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise PgBackupError(
            f"cannot read the manifest of {set_dir.name} ({error})",
            "fetch the set again; a set without a readable manifest is never restored",
            ExitCode.CORRUPT,
        ) from error
    return data


def compare_row_counts(
    manifest: dict[str, Any], psql: list[str], env: dict[str, str], database: str
) -> str:
    """Count every table the manifest lists in `database`; raise CORRUPT at the first difference.
    `psql` is the command prefix that connects (the database name is appended)."""
    tables = manifest.get("tables") or []
    exact = manifest.get("row_counts", "exact") == "exact"
    rows = 0
    for table in tables:
        schema, name, expected = str(table["schema"]), str(table["name"]), int(table["rows"])
        sql = f"SELECT count(*) FROM {_ident(schema)}.{_ident(name)}"  # noqa: S608 (quoted)
        out = subprocess.run(
            [*psql, "-d", database, "-X", "-At", "-c", sql],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise PgBackupError(
                f"table {schema}.{name} cannot be read in the restored {database}: "
                f"{out.stderr.strip().splitlines()[-1] if out.stderr.strip() else 'psql failed'}",
                "the restore is incomplete: keep the old data and restore another set",
                ExitCode.CORRUPT,
            )
        actual = int(out.stdout.strip() or 0)
        if (exact and actual != expected) or (
            not exact and abs(actual - expected) > 0.1 * expected + 10
        ):
            raise PgBackupError(
                f"{schema}.{name} has {actual} rows in the restored {database}, "
                f"the set recorded {expected}",
                "the restore is incomplete: keep the old data and restore another set",
                ExitCode.CORRUPT,
            )
        rows += actual
    return f"{len(tables)} tables, {rows} rows match the manifest"


def _ident(name: str) -> str:
    """A quoted SQL identifier (names come from the manifest)."""
    return '"' + name.replace('"', '""') + '"'
