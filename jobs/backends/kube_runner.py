"""Running one Job and following it: create, wait for each container, stream its log, collect
the exit code. A mixin of `KubernetesBackend` (it needs `batch`, `core`, `namespace`, `sleep`,
`poll_seconds`); kept apart so the backend file reads as the API it offers."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from jobs.backends import steps
from jobs.errors import ExitCode, PgBackupError

STEP_TIMEOUT_SECONDS = 6 * 3600


def plain(obj: Any) -> Any:
    """A client model object (or a dict) as plain camelCase data."""
    from kubernetes.client import ApiClient

    return ApiClient().sanitize_for_serialization(obj)


def _api_error(error: Exception, what: str) -> PgBackupError:
    status = getattr(error, "status", None)
    if status == 404:
        return PgBackupError(
            f"{what}: not found", "run `pulumi up` for this stack", ExitCode.NOT_FOUND
        )
    if status in (401, 403):
        return PgBackupError(
            f"{what}: the Kubernetes API refused ({status})",
            "use a context bound to the restore Role (operatorGroup in the stack config)",
            ExitCode.DENIED,
        )
    return PgBackupError(
        f"{what}: {error}",
        "check --kubeconfig/--context and that the cluster is reachable",
        ExitCode.UNREACHABLE,
    )


class JobRunner:
    namespace: str
    poll_seconds: float
    sleep: Callable[[float], None]
    batch: Any
    core: Any

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PgBackupError:
            raise
        except Exception as error:  # noqa: BLE001 - ApiException, urllib3 and socket errors alike
            raise _api_error(error, what) from error

    # -- running a Job -----------------------------------------------------------------------
    def _pod_of(self, job: str) -> dict[str, Any] | None:
        pods = self._call(
            f"pods of Job {job}",
            self.core.list_namespaced_pod,
            self.namespace,
            label_selector=f"job-name={job}",
        )
        items = list(plain(pods).get("items") or [])
        return items[-1] if items else None

    def _wait_started(self, job: str, container: str) -> dict[str, Any] | None:
        """The pod once `container` runs or ran; None when the pod ended without running it
        (an earlier step failed)."""
        deadline = time.monotonic() + STEP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            pod = self._pod_of(job)
            if pod:
                status = pod.get("status") or {}
                every = [
                    *(status.get("initContainerStatuses") or []),
                    *(status.get("containerStatuses") or []),
                ]
                for entry in every:
                    if entry.get("name") != container:
                        continue
                    state = entry.get("state") or {}
                    if state.get("running") or state.get("terminated"):
                        return pod
                    if status.get("phase") in ("Succeeded", "Failed"):
                        return None
                    reason = (state.get("waiting") or {}).get("reason", "")
                    if reason in (
                        "ErrImagePull",
                        "ImagePullBackOff",
                        "InvalidImageName",
                        "CreateContainerConfigError",
                    ):
                        raise PgBackupError(
                            f"Job {job} cannot start: {reason}",
                            "check the images and Secrets named in the stack config",
                            ExitCode.CONFIG,
                        )
                if status.get("phase") in ("Succeeded", "Failed"):
                    return pod
            self.sleep(self.poll_seconds)
        raise PgBackupError(
            f"Job {job} did not start (a ReadWriteOnce volume attached on another node hangs "
            "at Multi-Attach)",
            f"kubectl -n {self.namespace} describe job {job}",
            ExitCode.STEP_FAILED,
        )

    def _follow(self, pod: str, container: str) -> str:
        """The container's log, echoed to stderr as it comes."""
        response = self._call(
            f"logs of {pod}",
            self.core.read_namespaced_pod_log,
            pod,
            self.namespace,
            container=container,
            follow=True,
            _preload_content=False,
        )
        if isinstance(response, str):
            chunks: Any = [response]
        elif hasattr(response, "stream"):
            chunks = response.stream()
        else:
            chunks = [getattr(response, "data", b"")]
        text = []
        for chunk in chunks:
            piece = chunk.decode("utf-8", "replace") if isinstance(chunk, bytes) else str(chunk)
            text.append(piece)
            for line in piece.splitlines():
                print(f"    {line}", file=sys.stderr, flush=True)
        return "".join(text)

    def _wait_finished(self, job: str) -> bool:
        deadline = time.monotonic() + STEP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            status = (
                plain(
                    self._call(
                        f"Job {job}", self.batch.read_namespaced_job_status, job, self.namespace
                    )
                ).get("status")
                or {}
            )
            if status.get("succeeded"):
                return True
            if status.get("failed") and not status.get("active"):
                return False
            self.sleep(self.poll_seconds)
        raise PgBackupError(
            f"Job {job} did not finish in time", f"kubectl -n {self.namespace} describe job {job}"
        )

    def _exit_code(self, job: str) -> int:
        pod = self._pod_of(job) or {}
        status = pod.get("status") or {}
        for entry in [
            *(status.get("initContainerStatuses") or []),
            *(status.get("containerStatuses") or []),
        ]:
            terminated = (entry.get("state") or {}).get("terminated") or {}
            if terminated.get("exitCode"):
                return int(terminated["exitCode"])
        return int(ExitCode.STEP_FAILED)

    def _run_job(self, manifest: dict[str, Any], what: str) -> str:
        """Create the Job, follow each container's log in order and return them all (the step's
        summary is the last JSON line); raise the step's own error if it failed."""
        name = manifest["metadata"]["name"]
        self._call(f"create Job {name}", self.batch.create_namespaced_job, self.namespace, manifest)
        print(f"    Job {name} created in {self.namespace}", file=sys.stderr, flush=True)
        pod_spec = manifest["spec"]["template"]["spec"]
        containers = [
            c["name"] for c in [*(pod_spec.get("initContainers") or []), *pod_spec["containers"]]
        ]
        logs = ""
        for container in containers:
            pod = self._wait_started(name, container)
            if pod is None:
                break
            logs += self._follow(pod["metadata"]["name"], container)
        if not self._wait_finished(name):
            raise steps.step_failed(what, self._exit_code(name), logs, f"Job {name}")
        return logs
