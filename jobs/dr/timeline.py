"""The report a rebuild ends with: what happened when, the RTO achieved and the RPO of the set.

RTO is measured from the incident (the loss, or the first `dr-rebuild` run when the operator does
not say when the loss happened) to the end of the last step, across resumed runs. RPO is the age of
the restored set at the incident: the data written after the set's end is what was lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from jobs.dr.state import RebuildState
from jobs.ui import paint, parse_time

RTO_TARGET_SECONDS = 3600  # the guide's targets: 1 h to restore ...
RPO_TARGET_SECONDS = 24 * 3600  # ... and at most one day of data lost


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S")


@dataclass(frozen=True)
class Outcome:
    rto_seconds: float
    rpo_seconds: float | None
    set_id: str

    @property
    def rto_met(self) -> bool:
        return self.rto_seconds <= RTO_TARGET_SECONDS

    @property
    def rpo_met(self) -> bool:
        return self.rpo_seconds is not None and self.rpo_seconds <= RPO_TARGET_SECONDS


def outcome(state: RebuildState) -> Outcome:
    end = max((r.finished_at for r in state.steps.values()), default=state.incident_at)
    set_id = str(state.facts.get("backup_id", ""))
    set_finished = parse_time(str(state.facts.get("set_finished_at", "")) or set_id)
    rpo = state.incident_at - set_finished.timestamp() if set_finished else None
    return Outcome(rto_seconds=end - state.incident_at, rpo_seconds=rpo, set_id=set_id)


def render(state: RebuildState, dns_step: str) -> str:
    lines = [paint(f"Timeline of the rebuild of stack {state.stack} (UTC)", "bold")]
    lines.append(f"  {clock(state.incident_at)}  +{duration(0)}  incident: the data was lost")
    for record in sorted(state.steps.values(), key=lambda r: r.finished_at):
        offset = duration(record.finished_at - state.incident_at)
        took = duration(record.finished_at - record.started_at)
        lines.append(
            f"  {clock(record.finished_at)}  +{offset}  {record.name:<12} ({took})  {record.detail}"
        )
    result = outcome(state)
    rto_verdict = paint("met", "green") if result.rto_met else paint("MISSED", "red")
    lines.append("")
    lines.append(
        f"RTO achieved: {duration(result.rto_seconds)} (target {duration(RTO_TARGET_SECONDS)})"
        f" — {rto_verdict}"
    )
    if result.rpo_seconds is None:
        lines.append("RPO: unknown (the set's finish time was not recorded)")
    else:
        rpo_verdict = paint("met", "green") if result.rpo_met else paint("MISSED", "red")
        lines.append(
            f"RPO: {duration(result.rpo_seconds)} of writes lost (set {result.set_id}; "
            f"target {duration(RPO_TARGET_SECONDS)}) — {rpo_verdict}"
        )
    lines.append(f"Next: {dns_step}")
    return "\n".join(lines)
