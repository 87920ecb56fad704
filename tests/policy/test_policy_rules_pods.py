"""Pod security and pinned images, on real component output. The backup CronJob runs pg_dump in an
init container and the upload in a container: weakening either must fire."""

from __future__ import annotations

from typing import Any

import pytest
from policy_cases import assert_fires, assert_passes, backup_cronjob, outcomes, render, weakened

POD_RULES = (
    "pod-host-isolation",
    "pod-non-root",
    "pod-no-privilege-escalation",
    "pod-capabilities-dropped",
    "pod-seccomp-runtime-default",
    "pod-resource-limits",
    "image-pinned",
    "image-digest",
)


def _pod(resources: list[Any]) -> dict[str, Any]:
    return backup_cronjob(resources)["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def _init(resources: list[Any]) -> dict[str, Any]:
    return _pod(resources)["initContainers"][0]


def _main(resources: list[Any]) -> dict[str, Any]:
    return _pod(resources)["containers"][0]


@pytest.mark.parametrize("rule", POD_RULES)
def test_pod_rules_pass(stack: str, rule: str) -> None:
    assert_passes(stack, rule)


def test_root_user_in_init_container_fires() -> None:
    resources = render("production")
    _init(resources)["securityContext"]["runAsUser"] = 0
    assert_fires(
        "production", resources, "pod-non-root", "init container 'backup'", "runAsUser is 0"
    )


def test_run_as_non_root_off_everywhere_fires() -> None:
    resources = render("staging")
    _pod(resources)["securityContext"]["runAsNonRoot"] = False
    _main(resources)["securityContext"]["runAsNonRoot"] = False
    assert_fires("staging", resources, "pod-non-root", "container 'upload'", "runAsNonRoot")


def test_privilege_escalation_fires() -> None:
    resources = render("production")
    del _main(resources)["securityContext"]["allowPrivilegeEscalation"]
    assert_fires(
        "production",
        resources,
        "pod-no-privilege-escalation",
        "container 'upload'",
        "allowPrivilegeEscalation is not False",
    )


def test_privileged_init_container_fires() -> None:
    resources = render("production")
    _init(resources)["securityContext"]["privileged"] = True
    assert_fires("production", resources, "pod-no-privilege-escalation", "privileged is True")


def test_capabilities_not_dropped_fires() -> None:
    resources = render("production")
    _init(resources)["securityContext"]["capabilities"] = {"drop": ["NET_RAW"]}
    assert_fires("production", resources, "pod-capabilities-dropped", "not ALL")


def test_capability_added_fires() -> None:
    resources = render("staging")
    _main(resources)["securityContext"]["capabilities"]["add"] = ["SYS_ADMIN"]
    assert_fires("staging", resources, "pod-capabilities-dropped", "add ['SYS_ADMIN']")


def test_seccomp_unconfined_fires() -> None:
    resources = render("production")
    _pod(resources)["securityContext"].pop("seccompProfile")
    _main(resources)["securityContext"]["seccompProfile"] = {"type": "Unconfined"}
    assert_fires("production", resources, "pod-seccomp-runtime-default", "Unconfined")


def test_missing_memory_limit_fires() -> None:
    # Stack config always fills limits (defaults), so the rendered container is weakened instead.
    resources = render("production")
    del _init(resources)["resources"]["limits"]["memory"]
    assert_fires("production", resources, "pod-resource-limits", "no resources.limits for memory")


@pytest.mark.parametrize(
    ("image", "phrase"),
    [("postgres:latest", "tag 'latest'"), ("postgres", "no tag and no digest")],
)
def test_unpinned_image_fires(image: str, phrase: str) -> None:
    # Stack config refuses unpinned images (rightly): weaken the rendered container.
    resources = render("production")
    _init(resources)["image"] = image
    assert_fires("production", resources, "image-pinned", phrase)


def test_digest_is_advised() -> None:
    resources = render("production")
    _main(resources)["image"] = "amazon/aws-cli:2.17.0"
    assert_fires("production", resources, "image-digest", "not pinned to a digest", result="warn")


def test_postgres_tls_passes(stack: str) -> None:
    assert_passes(stack, "postgres-tls")


def test_production_without_required_tls_fires() -> None:
    def prefer(postgres: dict[str, Any]) -> None:
        postgres["sslMode"] = "prefer"

    resources = weakened("production", "postgres", prefer)
    assert_fires("production", resources, "postgres-tls", "PGSSLMODE is 'prefer'")
    # Staging's policy config accepts it.
    # (one outcome per CronJob: the backup and the restore drill)
    assert {o.result for o in outcomes("staging", resources, "postgres-tls")} == {"pass"}


@pytest.mark.parametrize(
    ("change", "phrase"),
    [
        (lambda pod: pod.update(hostNetwork=True), "hostNetwork"),
        (lambda pod: pod.update(hostPID=True), "hostPID"),
        (
            lambda pod: pod["volumes"].append({"name": "node", "hostPath": {"path": "/"}}),
            "hostPath",
        ),
        (
            lambda pod: pod["securityContext"].update(
                sysctls=[{"name": "kernel.msgmax", "value": "1"}]
            ),
            "sysctls",
        ),
        (
            lambda pod: pod["containers"][0].update(ports=[{"containerPort": 80, "hostPort": 80}]),
            "hostPort",
        ),
        (
            lambda pod: pod["initContainers"][0]["securityContext"].update(procMount="Unmasked"),
            "procMount",
        ),
    ],
)
def test_sharing_anything_with_the_node_fires(change: Any, phrase: str) -> None:
    resources = render("production")
    change(_pod(resources))
    assert_fires("production", resources, "pod-host-isolation", phrase)


def test_an_unset_sslmode_counts_as_libpqs_prefer() -> None:
    resources = render("production")
    env = _init(resources)["env"]
    env[:] = [var for var in env if var["name"] != "PGSSLMODE"]
    assert_fires("production", resources, "postgres-tls", "'prefer' (unset")
