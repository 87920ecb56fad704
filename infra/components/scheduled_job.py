"""What the backup and the drill CronJobs share: the CronJob around one pod, its run policy, and the
pod settings neither may drop. One place, so the two cannot drift apart."""

from __future__ import annotations

from typing import Any, Protocol

import pulumi
import pulumi_kubernetes as k8s

from infra.pod_security import pod_security


class RunPolicy(Protocol):
    """When a CronJob runs, how long a run may take, and how long its record is kept."""

    @property
    def cronjob_name(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def schedule(self) -> str: ...
    @property
    def time_zone(self) -> str: ...
    @property
    def starting_deadline_seconds(self) -> int: ...
    @property
    def active_deadline_seconds(self) -> int: ...
    @property
    def backoff_limit(self) -> int: ...
    @property
    def successful_jobs_history_limit(self) -> int: ...
    @property
    def failed_jobs_history_limit(self) -> int: ...
    @property
    def ttl_seconds_after_finished(self) -> int: ...
    @property
    def suspend(self) -> bool: ...


def restricted_pod(
    service_account_name: pulumi.Input[str],
    containers: list[dict[str, Any]],
    volumes: list[dict[str, Any]],
    init_containers: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A run's pod: restricted security, never restarted in place (a failed run is a finding), and
    no Kubernetes API token (the steps never call the API; IRSA projects its own token)."""
    spec: dict[str, Any] = {
        "service_account_name": service_account_name,
        "automount_service_account_token": False,
        "restart_policy": "Never",
        "security_context": pod_security(),
    }
    if init_containers:
        spec["init_containers"] = init_containers
    return {**spec, "containers": containers, "volumes": volumes}


def scheduled_cronjob(
    name: str,
    policy: RunPolicy,
    labels: dict[str, str],
    pod_labels: dict[str, str],
    pod_spec: dict[str, Any],
    parent: pulumi.Resource,
) -> pulumi.Output[str]:
    """The CronJob that runs `pod_spec` on `policy`'s schedule, one run at a time (`Forbid`: the
    scripts also lock the volume, for Jobs made by hand). Returns its name."""
    cronjob = k8s.batch.v1.CronJob(
        f"{name}-cronjob",
        metadata={"name": policy.cronjob_name, "namespace": policy.namespace, "labels": labels},
        spec={
            "schedule": policy.schedule,
            "time_zone": policy.time_zone,
            "concurrency_policy": "Forbid",
            "starting_deadline_seconds": policy.starting_deadline_seconds,
            "successful_jobs_history_limit": policy.successful_jobs_history_limit,
            "failed_jobs_history_limit": policy.failed_jobs_history_limit,
            "suspend": policy.suspend,
            "job_template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "active_deadline_seconds": policy.active_deadline_seconds,
                    "backoff_limit": policy.backoff_limit,
                    # Longer than the history limits keep Jobs, so logs outlive them.
                    "ttl_seconds_after_finished": policy.ttl_seconds_after_finished,
                    "template": {"metadata": {"labels": pod_labels}, "spec": pod_spec},
                },
            },
        },
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return cronjob.metadata.apply(lambda m: m.name or policy.cronjob_name)
