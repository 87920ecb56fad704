"""CronJob safety: one run at a time, bounded in time, failures kept for inspection, and backups
at least as often as the recovery point objective asks."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .cron import CronError, longest_gap_hours
from .model import Config, Resource, ResourceRule, explain
from .props import CRONJOB, containers, dig, items, k8s_name, labels_match, pod_spec

BACKUP_LABELS = {"app": "postgres-backup"}
BACKUP_LABELS_SCHEMA = {
    "type": "object",
    "additionalProperties": {"type": "string"},
    "default": BACKUP_LABELS,
    "description": "Labels that mark a CronJob as a backup (on the CronJob, its job or pod).",
}


# The step a backup CronJob runs (jobs/scripts/backup.sh, mounted from the scripts ConfigMap).
BACKUP_SCRIPT = "backup.sh"


def is_backup(resource: Resource, wanted: Mapping[str, str]) -> bool:
    """A backup CronJob: labelled as one, or running the backup step whatever its labels (so
    that dropping a label cannot take a CronJob out of the backup rules)."""
    if resource.type != CRONJOB:
        return False
    places = (
        ("metadata", "labels"),
        ("spec", "jobTemplate", "metadata", "labels"),
        ("spec", "jobTemplate", "spec", "template", "metadata", "labels"),
    )
    if any(labels_match(dig(resource.props, *place), wanted) for place in places):
        return True
    spec = pod_spec(resource)
    return spec is not None and any(_runs_backup(c) for _, c in containers(spec))


def _runs_backup(container: Mapping[str, Any]) -> bool:
    words = [*items(dig(container, "command")), *items(dig(container, "args"))]
    return any(
        isinstance(word, str) and BACKUP_SCRIPT in word.replace("/", " ").split() for word in words
    )


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and value > 0


def _concurrency(resource: Resource, config: Config) -> Iterator[str]:
    policy = dig(resource.props, "spec", "concurrencyPolicy", default="Allow")
    if policy != "Forbid":
        yield explain(
            f"CronJob {k8s_name(resource)!r} has concurrencyPolicy {policy!r}",
            "two runs at once write to the same volume and compete for the database; a slow "
            "dump then snowballs",
            "set spec.concurrency_policy 'Forbid'",
        )


def _deadlines(resource: Resource, config: Config) -> Iterator[str]:
    name = k8s_name(resource)
    starting = dig(resource.props, "spec", "startingDeadlineSeconds")
    if not _positive(starting):
        yield explain(
            f"CronJob {name!r} has no startingDeadlineSeconds",
            "after the controller was down for a while, a CronJob with more than 100 missed "
            "runs stops scheduling for good",
            "set spec.starting_deadline_seconds (e.g. 3600)",
        )
    limit = int(config["maxActiveDeadlineSeconds"])
    active = dig(resource.props, "spec", "jobTemplate", "spec", "activeDeadlineSeconds")
    if not _positive(active) or active > limit:
        found = f"is {active:g}" if _positive(active) else "is not set"
        yield explain(
            f"CronJob {name!r}: activeDeadlineSeconds {found} (at most {limit} allowed)",
            "a hung dump holds the lock and, with concurrencyPolicy Forbid, silently blocks "
            "every later backup",
            f"set spec.job_template.spec.active_deadline_seconds to at most {limit}",
        )
    backoff = dig(resource.props, "spec", "jobTemplate", "spec", "backoffLimit")
    maximum = int(config["maxBackoffLimit"])
    if not isinstance(backoff, int | float) or backoff > maximum:
        found = f"is {backoff:g}" if isinstance(backoff, int | float) else "is not set (6)"
        yield explain(
            f"CronJob {name!r}: backoffLimit {found} (at most {maximum} allowed)",
            "each retry of a failed dump loads the database again and hides the failure for hours",
            f"set spec.job_template.spec.backoff_limit to at most {maximum}",
        )


def _history(resource: Resource, config: Config) -> Iterator[str]:
    name = k8s_name(resource)
    minimum = int(config["minFailedJobsHistoryLimit"])
    yield from _ttl(resource, config)
    for field, floor in (
        ("successfulJobsHistoryLimit", 1),
        ("failedJobsHistoryLimit", minimum),
    ):
        value = dig(resource.props, "spec", field)
        if not isinstance(value, int | float) or value < floor:
            found = f"is {value:g}" if isinstance(value, int | float) else "is not set"
            yield explain(
                f"CronJob {name!r}: {field} {found} (at least {floor} needed)",
                "without the finished Jobs there is no log and no status to investigate a "
                "failed backup with",
                f"set spec.{_snake(field)} to at least {floor}",
            )


def _ttl(resource: Resource, config: Config) -> Iterator[str]:
    minimum = int(config["minTtlSecondsAfterFinished"])
    ttl = dig(resource.props, "spec", "jobTemplate", "spec", "ttlSecondsAfterFinished")
    if isinstance(ttl, int | float) and ttl < minimum:
        yield explain(
            f"CronJob {k8s_name(resource)!r}: ttlSecondsAfterFinished is {ttl:g} (at least "
            f"{minimum} needed)",
            "finished Jobs and their logs are deleted after this time whatever the history "
            "limits say, so a failure is gone before anyone looks",
            f"set databases[].ttlSecondsAfterFinished to at least {minimum}",
        )


def _snake(field: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in field)


def _schedule(resource: Resource, config: Config) -> Iterator[str]:
    if not is_backup(resource, config["backupLabels"]):
        return
    name = k8s_name(resource)
    hours = float(config["maxIntervalHours"])
    fix = f"set a schedule that runs at least every {hours:g} h, e.g. '0 2 * * *'"
    if dig(resource.props, "spec", "suspend") is True:
        yield explain(
            f"backup CronJob {name!r} is suspended",
            "no backup is taken at all while it is",
            "remove suspend (set it False) before merging",
        )
    schedule = dig(resource.props, "spec", "schedule", default="")
    try:
        gap = longest_gap_hours(str(schedule))
    except CronError as error:
        yield explain(
            f"backup CronJob {name!r}: schedule {schedule!r} cannot be read ({error})",
            "Kubernetes refuses it, or no backup runs when expected",
            fix,
        )
        return
    if gap > hours:
        yield explain(
            f"backup CronJob {name!r} runs up to {gap:g} h apart (schedule {schedule!r})",
            f"the recovery point objective is {hours:g} h: a failure just before a run loses "
            "more data than the service promises",
            fix,
        )


TYPES = frozenset({CRONJOB})
RULES = (
    ResourceRule(
        "cronjob-concurrency-forbid",
        "CronJobs never run two Jobs at once.",
        "mandatory",
        {},
        types=TYPES,
        check=_concurrency,
    ),
    ResourceRule(
        "cronjob-deadlines",
        "CronJobs set a starting deadline, an active deadline and a small backoff limit.",
        "mandatory",
        {
            "maxActiveDeadlineSeconds": {"type": "integer", "minimum": 60, "default": 86400},
            "maxBackoffLimit": {"type": "integer", "minimum": 0, "default": 3},
        },
        types=TYPES,
        check=_deadlines,
    ),
    ResourceRule(
        "cronjob-history-limits",
        "CronJobs keep finished Jobs (failed ones too) and their logs long enough to inspect.",
        "mandatory",
        {
            "minFailedJobsHistoryLimit": {"type": "integer", "minimum": 1, "default": 1},
            "minTtlSecondsAfterFinished": {"type": "integer", "minimum": 0, "default": 86400},
        },
        types=TYPES,
        check=_history,
    ),
    ResourceRule(
        "backup-schedule-daily",
        "Backup CronJobs run at least once per recovery point objective (24 h) and are not "
        "suspended.",
        "mandatory",
        {
            "maxIntervalHours": {"type": "number", "minimum": 1, "default": 24},
            "backupLabels": BACKUP_LABELS_SCHEMA,
        },
        types=TYPES,
        check=_schedule,
    ),
)
