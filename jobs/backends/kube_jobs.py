"""Job manifests made from the stack's CronJob: pure functions over plain (camelCase) dicts.

Every Job reuses the CronJob's pod template — security context, volumes, ServiceAccount, images,
credentials as files — so a step runs exactly as the scheduled backup does; only the command, a few
variables and (for restore/fetch) the ServiceAccount change.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MANUAL_ANNOTATION = "cronjob.kubernetes.io/instantiate"
STEP_LABEL = "pgbackup.io/step"
DATABASE_LABEL = "pgbackup.io/database"
SCRATCH_VOLUME = "pgbackup-scratch"
SCRATCH_DIR = "/scratch"
AWS_STEPS = frozenset({"upload.sh", "fetch.sh"})


def job_name(base: str, purpose: str, now: datetime | None = None) -> str:
    """`<cronjob>-<purpose>-<utc time>`, cut to 63 characters (a label value limit)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")
    suffix = f"-{purpose}-{stamp}"
    return f"{base[: 63 - len(suffix)].rstrip('-')}{suffix}"


def add_env(job: dict[str, Any], values: dict[str, str]) -> None:
    """Set these variables in every container of a Job's pod (initContainers too)."""
    pod = job["spec"]["template"]["spec"]
    for container in [*(pod.get("initContainers") or []), *pod["containers"]]:
        env = [e for e in container.get("env") or [] if e["name"] not in values]
        container["env"] = env + [{"name": k, "value": v} for k, v in values.items()]


def manual_job(cronjob: dict[str, Any], name: str) -> dict[str, Any]:
    """What `kubectl create job NAME --from=cronjob/X` creates: the jobTemplate's spec, labels and
    annotations plus `cronjob.kubernetes.io/instantiate: manual`, owned by the CronJob."""
    meta = cronjob["metadata"]
    template = cronjob["spec"]["jobTemplate"]
    template_meta = template.get("metadata") or {}
    annotations = dict(template_meta.get("annotations") or {})
    annotations[MANUAL_ANNOTATION] = "manual"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": meta.get("namespace"),
            "labels": dict(template_meta.get("labels") or {}),
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "name": meta["name"],
                    "uid": meta.get("uid", ""),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": copy.deepcopy(template["spec"]),
    }


def _mentions(container: dict[str, Any], script: str) -> bool:
    words = [*(container.get("command") or []), *(container.get("args") or [])]
    return any(script in str(word) for word in words)


def _pick(pod: dict[str, Any], script: str) -> dict[str, Any]:
    """The template container that runs `script`'s kind of step (postgres or aws-cli image)."""
    everything = [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]
    wanted = ("upload.sh", "fetch.sh") if script in AWS_STEPS else ("backup.sh", "restore.sh")
    for marker in wanted:
        for container in everything:
            if _mentions(container, marker):
                return container
    for container in everything:
        image = str(container.get("image", ""))
        if (script in AWS_STEPS) == ("aws-cli" in image):
            return container
    return (pod.get("containers") or [{}])[0]


def scripts_dir(pod: dict[str, Any], container: dict[str, Any], configmap: str) -> str:
    """Where the scripts ConfigMap is mounted in `container` (else where its command points)."""
    volumes = {
        v["name"]
        for v in pod.get("volumes") or []
        if (v.get("configMap") or {}).get("name") == configmap
    }
    for mount in container.get("volumeMounts") or []:
        if mount.get("name") in volumes:
            return str(mount["mountPath"]).rstrip("/")
    for word in [*(container.get("command") or []), *(container.get("args") or [])]:
        match = re.search(r"(\S*)/[\w-]+\.sh\b", str(word))
        if match:
            return match.group(1)
    return "/scripts"


def _set_env(container: dict[str, Any], values: dict[str, str]) -> None:
    env = [e for e in container.get("env") or [] if e.get("name") not in values]
    env.extend({"name": k, "value": v} for k, v in values.items())
    container["env"] = env


def _swap_credentials(pod: dict[str, Any], container: dict[str, Any], secret: str) -> None:
    """Point the volume behind AWS_SHARED_CREDENTIALS_FILE at `secret`."""
    values = {e.get("name"): e.get("value") for e in container.get("env") or []}
    credentials_file = str(values.get("AWS_SHARED_CREDENTIALS_FILE") or "")
    if not credentials_file:
        return
    directory = credentials_file.rsplit("/", 1)[0]
    mounted = {
        m.get("name")
        for m in container.get("volumeMounts") or []
        if str(m.get("mountPath", "")).rstrip("/") == directory
    }
    for volume in pod.get("volumes") or []:
        if volume.get("name") in mounted and volume.get("secret"):
            volume["secret"]["secretName"] = secret


@dataclass(frozen=True)
class Step:
    script: str
    env: dict[str, str]


def step_job(
    cronjob: dict[str, Any],
    name: str,
    configmap: str,
    database: str,
    steps: list[Step],
    service_account: str | None = None,
    aws_image: str = "",
    scratch: bool = False,
    credentials_secret: str = "",
) -> dict[str, Any]:
    """A Job running `steps` in order (all but the last as initContainers) in the CronJob's pod
    template. `scratch`: BACKUP_DIR is an emptyDir instead of the PVC (offsite verify).
    `credentials_secret`: the AWS shared-credentials Secret to mount instead of the template's
    (accessKey mode: the reader's key for restore and fetch)."""
    template = cronjob["spec"]["jobTemplate"]
    pod_template = copy.deepcopy(template["spec"]["template"])
    pod = pod_template["spec"]
    containers = []
    for index, step in enumerate(steps):
        base = _pick(pod, step.script)
        container = copy.deepcopy(base)
        directory = scripts_dir(pod, base, configmap)
        container["name"] = f"step-{index}-{step.script.removesuffix('.sh')}"
        container["command"] = ["bash", f"{directory}/{step.script}"]
        container.pop("args", None)
        wrong_image = "aws-cli" not in str(container.get("image", ""))
        if step.script in AWS_STEPS and wrong_image and aws_image:
            container["image"] = aws_image
        env = {"PGDATABASE": database, **step.env}
        if scratch:
            env["BACKUP_DIR"] = SCRATCH_DIR
            mounts = container.setdefault("volumeMounts", [])
            mounts.append({"name": SCRATCH_VOLUME, "mountPath": SCRATCH_DIR})
        _set_env(container, env)
        if credentials_secret and step.script in AWS_STEPS:
            _swap_credentials(pod, container, credentials_secret)
        containers.append(container)
    pod["initContainers"] = containers[:-1]
    pod["containers"] = containers[-1:]
    pod["restartPolicy"] = "Never"
    if scratch:
        pod.setdefault("volumes", []).append({"name": SCRATCH_VOLUME, "emptyDir": {}})
    if service_account:
        pod["serviceAccountName"] = service_account
    labels = dict((template.get("metadata") or {}).get("labels") or {})
    labels[STEP_LABEL] = steps[-1].script.removesuffix(".sh")
    labels[DATABASE_LABEL] = database.replace("_", "-")[:63]
    pod_template.setdefault("metadata", {}).setdefault("labels", {}).update(labels)
    spec = copy.deepcopy(template["spec"])
    spec["template"] = pod_template
    spec["backoffLimit"] = 0  # a failed step is reported, never retried behind the operator's back
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": cronjob["metadata"].get("namespace"),
            "labels": labels,
        },
        "spec": spec,
    }
