"""How long backups are kept and how much room they have: never below the floors this stack's
policy config sets (a staging stack may keep less than production)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from .cronjobs import BACKUP_LABELS_SCHEMA, is_backup
from .model import Config, NotApplicable, Resource, ResourceRule, StackRule, Violation, explain
from .props import BUCKET, PVC, bucket_name, containers, dig, items, k8s_name, of_type, pod_spec
from .quantity import to_bytes
from .s3 import expiration_days


def _env(container: object, name: str) -> str | None:
    for var in items(dig(container, "env")):
        if dig(var, "name") == name:
            value = dig(var, "value")
            return None if value is None else str(value)
    return None


def _local(resources: Sequence[Resource], config: Config) -> Iterator[Violation]:
    floors = {"RETENTION_DAYS": int(config["minRetentionDays"]), "KEEP_MIN": int(config["minKeep"])}
    keys = {"RETENTION_DAYS": "retentionDays", "KEEP_MIN": "keepMin"}
    for cronjob in resources:
        spec = pod_spec(cronjob)
        if spec is None or not is_backup(cronjob, config["backupLabels"]):
            continue
        for variable, floor in floors.items():
            values = [_env(c, variable) for _, c in containers(spec)]
            set_values = [v for v in values if v is not None]
            if not set_values:
                yield Violation(
                    explain(
                        f"backup CronJob {k8s_name(cronjob)!r} does not set {variable}",
                        "the script's built-in default then decides how long backups are kept, "
                        "and nobody reviews it against this stack's floor",
                        f"set {variable} (databases[].{keys[variable]}) to at least {floor}",
                    ),
                    cronjob,
                )
                continue
            low = min(set_values, key=lambda v: int(v) if v.isdigit() else -1)
            if not low.isdigit() or int(low) < floor:
                yield Violation(
                    explain(
                        f"backup CronJob {k8s_name(cronjob)!r} sets {variable}={low}, below this "
                        f"stack's floor of {floor}",
                        "pruning then deletes sets the recovery policy promises to keep; a "
                        "corruption noticed late has nothing clean left to restore",
                        f"set databases[].{keys[variable]} to at least {floor} in the stack "
                        "config (or lower the floor in policy/config/<stack>.json after review)",
                    ),
                    cronjob,
                )


def _offsite(resources: Sequence[Resource], config: Config) -> Iterator[Violation]:
    floor = int(config["minOffsiteRetentionDays"])
    for bucket in of_type(resources, BUCKET):
        days = expiration_days(resources, bucket)
        if days and min(days) < floor:
            yield Violation(
                explain(
                    f"bucket {bucket_name(bucket)!r} expires backups after {min(days)} days, "
                    f"below this stack's floor of {floor}",
                    "the offsite copy is the one that survives losing the cluster; it must "
                    "reach back as far as the recovery policy promises",
                    f"set offsite.retentionDays to at least {floor} in the stack config",
                ),
                bucket,
            )


def _pvc_size(resource: Resource, config: Config) -> Iterator[str]:
    minimum = str(config["minStorage"])
    size = dig(resource.props, "spec", "resources", "requests", "storage")
    try:
        too_small = size is None or to_bytes(size) < to_bytes(minimum)
    except ValueError:
        too_small = True
    if too_small:
        yield explain(
            f"PVC {k8s_name(resource)!r} requests {size or 'no storage'}, less than {minimum}",
            "a full volume fails every backup from then on (the guide's 'disk full' case)",
            f"set databases[].storageSize to at least {minimum} in the stack config",
        )


def _retention(resources: Sequence[Resource], config: Config) -> Iterator[Violation]:
    if not of_type(resources, BUCKET) and not any(pod_spec(r) for r in resources):
        raise NotApplicable("the stack declares no backup CronJob and no bucket")
    yield from _local(resources, config)
    yield from _offsite(resources, config)


RULES = (
    StackRule(
        "retention-floor",
        "Backups are kept, on the volume and offsite, at least as long as this stack's floor.",
        "mandatory",
        {
            "minRetentionDays": {"type": "integer", "minimum": 1, "default": 7},
            "minKeep": {"type": "integer", "minimum": 1, "default": 3},
            "minOffsiteRetentionDays": {"type": "integer", "minimum": 1, "default": 30},
            "backupLabels": BACKUP_LABELS_SCHEMA,
        },
        _retention,
    ),
    ResourceRule(
        "pvc-min-size",
        "Backup volumes are at least this stack's minimum size.",
        "mandatory",
        {"minStorage": {"type": "string", "default": "10Gi"}},
        types=frozenset({PVC}),
        check=_pvc_size,
    ),
)
