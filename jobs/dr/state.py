"""Resume state of a `dr-rebuild`: which steps are done, when, and what they found.

Kept on the operator's machine, never in the cluster being rebuilt: by default
`$XDG_STATE_HOME/pgbackup/dr-<stack>.json` (`~/.local/state/pgbackup/dr-<stack>.json`), or the path
given with `--state-file`. Written to a temporary name, fsynced and renamed, so a crash mid-write
leaves the previous state intact. No secret is ever stored in it.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jobs.errors import ExitCode, PgBackupError

FORMAT = 1


def default_state_file(stack: str) -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "pgbackup" / f"dr-{stack}.json"


@dataclass
class StepRecord:
    name: str
    started_at: float
    finished_at: float
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "detail": self.detail,
        }


@dataclass
class RebuildState:
    """Everything a re-run needs to carry on where the last one stopped."""

    path: Path
    stack: str
    incident_at: float  # when the loss happened (or the first run started): the RTO clock's zero
    # What is being rebuilt (the database and the new cluster): a resume must be of the same.
    target: str = ""
    steps: dict[str, StepRecord] = field(default_factory=dict)
    # Values found by one step and needed by later ones (set id, its finish time, app replicas).
    facts: dict[str, Any] = field(default_factory=dict)
    finished_at: float | None = None

    def done(self, step: str) -> bool:
        return step in self.steps

    def record(self, record: StepRecord) -> None:
        self.steps[record.name] = record
        self.save()

    def save(self) -> None:
        payload = {
            "format": FORMAT,
            "stack": self.stack,
            "target": self.target,
            "incident_at": self.incident_at,
            "finished_at": self.finished_at,
            "steps": [r.as_dict() for r in self.steps.values()],
            "facts": self.facts,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(payload, stream, indent=2)
                stream.write("\n")
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temp, self.path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    @classmethod
    def load_or_new(
        cls, path: Path, stack: str, incident_at: float, target: str = ""
    ) -> RebuildState:
        """The saved state of an unfinished rebuild of `stack` into `target`, or a fresh one. A
        finished rebuild, or one of another database or cluster, is never resumed: its steps
        would all be skipped and the old timeline reported as this rebuild's."""
        if not path.exists():
            return cls(path=path, stack=stack, incident_at=incident_at, target=target)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            steps = {
                s["name"]: StepRecord(
                    s["name"], float(s["started_at"]), float(s["finished_at"]), str(s["detail"])
                )
                for s in data.get("steps", [])
            }
        except (ValueError, KeyError, TypeError) as error:
            raise PgBackupError(
                f"resume state {path} is unreadable ({error})",
                "move it aside and re-run with --fresh (completed steps will run again)",
                ExitCode.CONFIG,
            ) from error
        if data.get("stack") != stack:
            raise PgBackupError(
                f"resume state {path} belongs to stack {data.get('stack')!r}, not {stack!r}",
                "pass --state-file with a path of its own for this stack",
                ExitCode.USAGE,
            )
        saved_target = str(data.get("target") or "")
        if target and saved_target and saved_target != target:
            raise PgBackupError(
                f"resume state {path} is of a rebuild of {saved_target}, not {target}",
                "re-run with --fresh to start this rebuild over (or give it a --state-file)",
                ExitCode.USAGE,
            )
        if data.get("finished_at") is not None:
            raise PgBackupError(
                f"the rebuild recorded in {path} finished already "
                f"({_utc(float(data['finished_at']))})",
                "re-run with --fresh to rebuild again (its steps all run anew)",
                ExitCode.USAGE,
            )
        return cls(
            path=path,
            stack=stack,
            incident_at=float(data["incident_at"]),
            target=saved_target or target,
            steps=steps,
            facts=dict(data.get("facts") or {}),
        )


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
