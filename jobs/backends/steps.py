"""What both backends share about the in-container steps: their output and their exit codes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

from jobs.backends.base import BackupSet, PreparedRestore, RestoreResult
from jobs.errors import ExitCode, PgBackupError

SCRIPTS_DIR = Path(__file__).resolve().parent.parent / "scripts"

# What to do next when a step fails without saying so itself.
_DEFAULT_FIX = {
    ExitCode.USAGE: "check the command's arguments",
    ExitCode.CORRUPT: "use another set (`pgbackup list`); this one is refused",
    ExitCode.NOT_FOUND: "pick an existing set from `pgbackup list`",
    ExitCode.UNREACHABLE: "check that PostgreSQL / S3 are reachable from where the step runs",
    ExitCode.STEP_FAILED: "read the step's log above and retry",
    ExitCode.NO_SPACE: "free or grow the volume (stack config storageSize, then `pulumi up`)",
    ExitCode.LOCKED: "another backup or restore is running; wait for it and retry",
    ExitCode.DENIED: "check the credentials the step runs with",
    ExitCode.CONFIG: "fix the stack configuration or the missing secret",
}


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of `text` that is a JSON object (the steps' machine-readable output)."""
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                found.append(value)
    return found


def summary(text: str, step: str) -> dict[str, Any]:
    """The step's one-line JSON summary: the last JSON object it printed."""
    lines = json_lines(text)
    if not lines:
        raise PgBackupError(
            f"{step} finished without its JSON summary line",
            "read the step's log above; the scripts may be out of date",
            ExitCode.STEP_FAILED,
        )
    return lines[-1]


def error_line(text: str) -> str:
    """The step's own `<cause> — <fix>`: from its failed JSON summary, else its `ERROR:` log line
    (which may carry a timestamp in front)."""
    for line in reversed(json_lines(text)):
        if line.get("status") == "failed" and line.get("error"):
            return str(line["error"])
    for raw in reversed(text.splitlines()):
        if "ERROR: " in raw:
            return raw.split("ERROR: ", 1)[1].strip()
    return ""


def step_failed(step: str, exit_code: int, log_text: str, where: str = "") -> PgBackupError:
    """A step's failure as the CLI's error: the script's own line and code when it gave them."""
    try:
        code = ExitCode(exit_code)
    except ValueError:
        code = ExitCode.STEP_FAILED
    if code in (ExitCode.OK, ExitCode.VIOLATIONS, ExitCode.ABORTED):
        code = ExitCode.STEP_FAILED
    own = error_line(log_text)
    if " — " in own:
        cause, fix = own.split(" — ", 1)
    else:
        cause, fix = own, _DEFAULT_FIX.get(code, "read the step's log above")
    suffix = f" ({where})" if where else ""
    message = (
        f"{step} failed{suffix}: {cause}" if cause else f"{step} failed{suffix}, exit {exit_code}"
    )
    return PgBackupError(message, fix, code)


def inventory(text: str, db: str | None) -> tuple[list[BackupSet], dict[str, Any]]:
    """inventory.sh's output: the sets of `db` (all when None; legacy dumps always, as
    "(legacy)"), newest first, and its volume line (size/used/avail bytes), with `folders`: the
    other folders holding sets, as `other_folders` (see StatusReport)."""
    sets: list[BackupSet] = []
    volume: dict[str, Any] = {}
    folders: list[tuple[str, int, int]] = []
    for line in json_lines(text):
        if line.get("event") == "volume":
            volume = {**line, "folders": folders}
            continue
        if line.get("event") == "folder":
            if line.get("folder") != db:
                folders.append(
                    (
                        str(line.get("folder")),
                        int(line.get("sets") or 0),
                        int(line.get("bytes") or 0),
                    )
                )
            continue
        legacy = line.get("kind") == "legacy"
        if "id" not in line or (db and not legacy and line.get("database") != db):
            continue
        complete = line.get("complete", True) not in (False, "false")
        sets.append(
            BackupSet(
                database="(legacy)" if legacy else str(line.get("database") or db or ""),
                id=str(line["id"]),
                bytes=int(line.get("bytes") or 0),
                # Incomplete, or set aside as corrupt by an upload (`<id>.corrupt`).
                status=str(line.get("status") or "")
                if complete
                else ("corrupt" if line.get("status") == "corrupt" else "incomplete"),
                finished_at=str(line.get("finished_at") or ""),
                where="volume",
            )
        )
    return sorted(sets, key=lambda s: s.id, reverse=True), volume


def not_offsite_note(volume: list[BackupSet], offsite: list[BackupSet]) -> str | None:
    """A note naming the verified sets of the volume the bucket does not hold (verified) yet."""
    there = {s.id for s in offsite if s.verified}
    missing = sorted(s.id for s in volume if s.verified and s.id not in there)
    if not missing:
        return None
    return (
        f"{len(missing)} verified set(s) on the volume not offsite yet (oldest {missing[0]}): "
        "the next upload sends them and retention keeps them until then; if this lasts, read "
        "the upload's log (the backup Job's upload container)"
    )


def unexpected_folders(
    folders: list[tuple[str, int, int]], expected: Collection[str] | None
) -> tuple[tuple[str, int, int], ...]:
    """The other folders holding sets (inventory's `folders`) that status names: rehearsal copies
    (`.stacks/...`) always, any other folder unless it is `expected` (None: any may be, as on a
    volume of the user's without a stack file)."""
    return tuple(
        f
        for f in folders
        if f[0].startswith(".stacks/") or (expected is not None and f[0] not in expected)
    )


# -- the environment of a step, the same whichever backend runs it ------------------------------
# What a command decides for each step it runs. Never inherited from the operator's shell by the
# local backend: a BACKUP_ID or SOURCE_STACK left exported after running a step by hand would
# silently redirect a restore or a fetch.
PER_RUN_VARIABLES = frozenset(
    {
        "BACKUP_ID",
        "DATABASE",
        "FETCH_TO",
        "RESTORE_STEP",
        "RETAIN_UNTIL_OFFSITE",
        "SKIP_RETENTION",
        "SOURCE_DATABASE",
        "SOURCE_STACK",
        "TARGET_DATABASE",
    }
)


def source_env(source_stack: str | None) -> dict[str, str]:
    """`SOURCE_STACK`: another stack's set is fetched to, and restored from, that stack's own
    folder on the volume, apart from this stack's sets (fetch.sh and restore.sh)."""
    return {"SOURCE_STACK": source_stack} if source_stack else {}


def fetch_env(
    backup_id: str, source_database: str | None, source_stack: str | None = None
) -> dict[str, str]:
    """fetch.sh's variables (`DATABASE`: the set's database when it is another stack's)."""
    env = {"BACKUP_ID": backup_id, **source_env(source_stack)}
    if source_database:
        env["DATABASE"] = source_database
    return env


def restore_env(
    db: str,
    backup_id: str,
    target: str | None,
    source_database: str | None,
    source_stack: str | None = None,
) -> dict[str, str]:
    """restore.sh's variables: `prepare` into the side database (the swap comes later), or `all`
    into `target`, a new database, with nothing to swap."""
    env = {
        "BACKUP_ID": backup_id,
        "RESTORE_STEP": "all" if target else "prepare",
        **source_env(source_stack),
    }
    if target:
        env["TARGET_DATABASE"] = target
    if source_database and source_database != db:
        env["SOURCE_DATABASE"] = source_database
    return env


def swap_env(prepared: PreparedRestore) -> dict[str, str]:
    """restore.sh's variables to swap a prepared side database in (the set is looked up again)."""
    env = {
        "BACKUP_ID": prepared.id,
        "RESTORE_STEP": "swap",
        **source_env(prepared.source_stack),
    }
    if prepared.source_database:
        env["SOURCE_DATABASE"] = prepared.source_database
    return env


def prepared_restore(
    db: str,
    backup_id: str,
    target: str | None,
    source_database: str | None,
    source_stack: str | None,
    result: dict[str, Any],
) -> PreparedRestore:
    """What restore.sh's summary of a prepare (or of an `all` into `target`) says was restored."""
    restored = str(result.get("id", backup_id))
    side = str(result.get("into") or result.get("side") or side_name(db, restored))
    source = source_database if source_database and source_database != db else None
    return PreparedRestore(db, restored, side, target, source, result, source_stack)


def fitted_name(base: str, suffix: str) -> str:
    """`base + suffix`, or when that exceeds PostgreSQL's 63 bytes, `base` cut short (never
    inside a character), `_`, 8 hex of its md5, then `suffix`: restore.sh's fitted_name."""
    raw, tail = base.encode(), suffix.encode()
    if len(raw) + len(tail) <= 63:
        return base + suffix
    digest = hashlib.md5(raw, usedforsecurity=False).hexdigest()[:8]
    cut = raw[: 63 - len(tail) - 9]
    while cut and not 0x20 <= cut[-1] <= 0x7E:
        cut = cut[:-1]
    return f"{cut.decode()}_{digest}{suffix}"


def side_name(db: str, backup_id: str) -> str:
    return fitted_name(db, f"__restore_{backup_id}")


def kept_name(db: str, backup_id: str) -> str:
    return fitted_name(db, f"__pre_restore_{backup_id}")


def restore_result(prepared: PreparedRestore, result: dict[str, Any]) -> RestoreResult:
    """What restore.sh's summary of a swap says: the previous live database's kept name."""
    kept = str(result.get("kept") or kept_name(prepared.database, prepared.id))
    return RestoreResult(prepared.database, prepared.id, kept, result)


def pick_volume_set(sets: list[BackupSet], db: str, backup_id: str, where: str) -> str:
    """The id of `backup_id` (or `latest`: the newest verified set) among the sets listed on a
    volume (newest first), refusing an incomplete one; `where` names the volume in errors."""
    for candidate in sets:
        if backup_id == "latest" and candidate.verified:
            return candidate.id
        if candidate.id == backup_id and candidate.status in ("incomplete", "corrupt"):
            why = "has no manifest (incomplete)"
            if candidate.status == "corrupt":
                why = "failed its checksums and was set aside (<id>.corrupt)"
            raise PgBackupError(
                f"set {backup_id} of {db} {why}",
                "pick a complete set from `pgbackup list`",
                ExitCode.CORRUPT,
            )
        if candidate.id == backup_id:
            return candidate.id
    if backup_id == "latest":
        raise PgBackupError(
            f"no verified set of {db} on {where}",
            "run `pgbackup backup` first, or restore --from offsite",
            ExitCode.NOT_FOUND,
        )
    raise PgBackupError(
        f"no set {backup_id} of {db} on {where}",
        "pick an id from `pgbackup list`, or use --from offsite",
        ExitCode.NOT_FOUND,
    )
