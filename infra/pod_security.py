"""The restricted Pod Security profile every pod of ours runs under, in one place, so the backup,
restore and drill pods cannot drift apart (checkov and the policy pack check the result)."""

from __future__ import annotations

from typing import Any

# A high, numeric UID/GID no image defines: nothing on the root filesystem belongs to it.
RUN_AS = 10001


def container_security() -> dict[str, Any]:
    """Non-root, no privilege escalation, all capabilities dropped, read-only root filesystem."""
    return {
        "allow_privilege_escalation": False,
        "privileged": False,
        "read_only_root_filesystem": True,
        "run_as_non_root": True,
        "run_as_user": RUN_AS,
        "run_as_group": RUN_AS,
        "capabilities": {"drop": ["ALL"]},
        "seccomp_profile": {"type": "RuntimeDefault"},
    }


def pod_security() -> dict[str, Any]:
    """The pod-level context; `fsGroup` makes the volume writable for the non-root user."""
    return {
        "run_as_non_root": True,
        "run_as_user": RUN_AS,
        "run_as_group": RUN_AS,
        "fs_group": RUN_AS,
        "fs_group_change_policy": "OnRootMismatch",
        "seccomp_profile": {"type": "RuntimeDefault"},
    }


def cpu_limit_env(container: str) -> dict[str, Any]:
    """`CPU_LIMIT` from the downward API: parallelism follows the container's CPU limit, not the
    node's `nproc`."""
    return {
        "name": "CPU_LIMIT",
        "value_from": {
            "resource_field_ref": {
                "container_name": container,
                "resource": "limits.cpu",
                "divisor": "1",
            }
        },
    }
