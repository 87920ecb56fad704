"""Run a Kubernetes pod spec's containers here, as the kubelet would: init containers in order,
then the containers, each with its own env and command, the pod's volumes mapped to local folders.

The demo runs the backup CronJob's real pod spec (built by `infra.components.backup_cronjob`) this
way, so "the scheduled backup" is the same scripts with the same environment as in the cluster;
only where the volumes live and how AWS credentials arrive differ.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jobs.backends import steps


def _container_env(
    container: Mapping[str, Any], mounts: Mapping[str, Path], values_from: Mapping[str, str]
) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in container.get("env") or []:
        name = str(item["name"])
        if "value" in item:
            env[name] = _map_path(str(item["value"]), mounts)
        elif name in values_from:
            env[name] = values_from[name]
    return env


def _map_path(value: str, mounts: Mapping[str, Path]) -> str:
    """A path inside the container, as the local folder its volume is mapped to."""
    for mount_path, local in sorted(mounts.items(), key=lambda kv: -len(kv[0])):
        if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
            return str(local) + value[len(mount_path.rstrip("/")) :]
    return value


def run_pod(
    pod_spec: Mapping[str, Any],
    volumes: Mapping[str, Path],
    base_env: Mapping[str, str],
    values_from: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Run every container of the pod to completion; returns each one's JSON summary line.
    `volumes` maps the pod's volume names to local folders; `base_env` stands for the image
    (PATH with the tools, credentials the standard way)."""
    summaries = []
    for container in [*(pod_spec.get("init_containers") or []), *pod_spec["containers"]]:
        mounts = {str(m["mount_path"]): volumes[str(m["name"])] for m in container["volume_mounts"]}
        env = {**base_env, **_container_env(container, mounts, values_from or {})}
        argv = [_map_path(str(arg), mounts) for arg in container["command"]]
        for path in mounts.values():
            path.mkdir(parents=True, exist_ok=True)
        # A session of its own, as a container has its own process tree: a signal a step sends
        # to its process group stays inside it.
        process = subprocess.run(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            start_new_session=True,
        )
        for line in process.stderr.splitlines():
            print(f"    {container['name']}| {line}", file=sys.stderr, flush=True)
        if process.returncode != 0:
            raise steps.step_failed(
                str(container["name"]), process.returncode, process.stderr + process.stdout
            )
        summaries.append(steps.summary(process.stdout, str(container["name"])))
    return summaries


def local_path_env() -> dict[str, str]:
    """What an image gives every container here: PATH and the locale, nothing of ours."""
    keep = ("PATH", "LANG", "LC_ALL", "TZ")
    return {k: v for k, v in os.environ.items() if k in keep}
