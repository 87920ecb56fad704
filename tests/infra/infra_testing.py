"""Small lookups over declared resources, shared by the infra tests."""

from __future__ import annotations

from typing import Any

from infra.mock_run import DeclaredResource


def only(resources: list[DeclaredResource], type_token: str) -> list[DeclaredResource]:
    return [r for r in resources if r.type == type_token]


def one(resources: list[DeclaredResource], type_token: str) -> DeclaredResource:
    found = only(resources, type_token)
    assert len(found) == 1, f"expected one {type_token}, found {[r.name for r in found]}"
    return found[0]


def backup_cronjob(resources: list[DeclaredResource]) -> DeclaredResource:
    """The backup CronJob (a stack with drills also declares a restore-drill CronJob): the one
    whose parent component is a BackupCronJob (a URN's type chain ends with the parent's type)."""
    found = [
        r
        for r in only(resources, "kubernetes:batch/v1:CronJob")
        if (r.parent or "").split("::")[-2].endswith("pgbackup:index:BackupCronJob")
    ]
    assert len(found) == 1, f"expected one backup CronJob, found {[r.name for r in found]}"
    return found[0]


def pod_spec(cronjob: DeclaredResource) -> dict[str, Any]:
    return cronjob.inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
