"""Pod security for every container the stack runs (init containers included), and images
pinned to a version."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .model import Config, Resource, ResourceRule, explain
from .props import WORKLOADS, container_label, containers, dig, items, k8s_name, pod_spec

ContainerCheck = Callable[[Mapping[str, Any], Mapping[str, Any], Config], str | None]


def _per_container(problem: ContainerCheck, why: str, fix: str):  # type: ignore[no-untyped-def]
    """A resource check from a container check: `problem` says what is wrong, or None."""

    def check(resource: Resource, config: Config) -> Iterator[str]:
        spec = pod_spec(resource)
        if spec is None:
            return
        pod_context = dig(spec, "securityContext", default={})
        for kind, container in containers(spec):
            what = problem(container, pod_context, config)
            if what:
                where = f"{container_label(resource, kind, container)} of {k8s_name(resource)!r}"
                yield explain(f"{where}: {what}", why, fix)

    return check


def _effective(container: Mapping[str, Any], pod: Mapping[str, Any], key: str) -> Any:
    """A container's securityContext field, falling back to the pod's as Kubernetes does."""
    value = dig(container, "securityContext", key)
    return dig(pod, key) if value is None else value


def _root(container: Mapping[str, Any], pod: Mapping[str, Any], config: Config) -> str | None:
    minimum = int(config["minRunAsUser"])
    user = _effective(container, pod, "runAsUser")
    if _effective(container, pod, "runAsNonRoot") is not True:
        return "runAsNonRoot is not True"
    if not isinstance(user, int | float):
        return (
            "runAsUser is not set (the official images start as root, so the pod would not start)"
        )
    if user < minimum:
        return f"runAsUser is {user:g}, below {minimum}"
    return None


def _escalation(container: Mapping[str, Any], pod: Mapping[str, Any], config: Config) -> str | None:
    context = dig(container, "securityContext", default={})
    if dig(context, "privileged") is True:
        return "privileged is True"
    if dig(context, "allowPrivilegeEscalation") is not False:
        return "allowPrivilegeEscalation is not False"
    return None


def _capabilities(
    container: Mapping[str, Any], pod: Mapping[str, Any], config: Config
) -> str | None:
    caps = dig(container, "securityContext", "capabilities", default={})
    dropped = [str(c).upper() for c in items(dig(caps, "drop"))]
    added = [str(c).upper() for c in items(dig(caps, "add"))]
    allowed = {str(c).upper() for c in config["allowedCapabilities"]}
    if "ALL" not in dropped:
        return f"capabilities drop {dropped or 'nothing'}, not ALL"
    extra = [c for c in added if c not in allowed]
    return f"capabilities add {extra}" if extra else None


def _seccomp(container: Mapping[str, Any], pod: Mapping[str, Any], config: Config) -> str | None:
    profile = dig(_effective(container, pod, "seccompProfile"), "type")
    if profile not in ("RuntimeDefault", "Localhost"):
        return f"seccompProfile type is {profile or 'not set (Unconfined)'}"
    return None


def _limits(container: Mapping[str, Any], pod: Mapping[str, Any], config: Config) -> str | None:
    limits = dig(container, "resources", "limits", default={})
    missing = [str(k) for k in config["requiredLimits"] if not dig(limits, str(k))]
    return f"no resources.limits for {', '.join(missing)}" if missing else None


def _ssl_mode(container: Mapping[str, Any], pod: Mapping[str, Any], config: Config) -> str | None:
    allowed = [str(m) for m in config["allowedSslModes"]]
    env = {dig(var, "name"): dig(var, "value") for var in items(dig(container, "env"))}
    if "PGSSLMODE" in env:
        mode = env["PGSSLMODE"]
    elif "PGHOST" in env:
        mode = "prefer"  # what libpq uses when nothing says otherwise
    else:
        return None  # connects to no server
    if mode not in allowed:
        unset = "" if "PGSSLMODE" in env else " (unset: libpq's default)"
        return f"PGSSLMODE is {mode!r}{unset}, not one of {', '.join(allowed)}"
    return None


# The volume types the "restricted" Pod Security Standard allows.
RESTRICTED_VOLUMES = frozenset(
    {
        "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
        "projected", "secret",
    }
)  # fmt: skip


def _host_isolation(resource: Resource, config: Config) -> Iterator[str]:
    """What the "restricted" (and "baseline") Pod Security Standards forbid at the pod level."""
    spec = pod_spec(resource)
    if spec is None:
        return
    name = k8s_name(resource)
    why = (
        "a pod that shares the node's namespaces or files, or tunes its kernel, can read other "
        "pods' traffic and processes or the node itself; the backup pods need none of it"
    )
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if dig(spec, field) is True:
            yield explain(f"{name!r} sets {field}: true", why, f"remove {field}")
    for volume in items(dig(spec, "volumes")):
        kinds = [k for k in (volume if isinstance(volume, Mapping) else {}) if k != "name"]
        for kind in kinds:
            if kind not in RESTRICTED_VOLUMES:
                yield explain(
                    f"{name!r}: volume {dig(volume, 'name', default='?')!r} is a {kind} volume",
                    why,
                    "use a persistentVolumeClaim, configMap, secret, emptyDir or projected volume",
                )
    if items(dig(spec, "securityContext", "sysctls")):
        yield explain(f"{name!r} sets sysctls", why, "remove securityContext.sysctls")
    for kind, container in containers(spec):
        where = f"{container_label(resource, kind, container)} of {name!r}"
        if any(dig(port, "hostPort") for port in items(dig(container, "ports"))):
            yield explain(f"{where} binds a hostPort", why, "remove ports[].hostPort")
        if dig(container, "securityContext", "procMount", default="Default") != "Default":
            yield explain(f"{where} unmasks /proc (procMount)", why, "remove procMount")


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """(repository, tag, digest) of an image reference."""
    rest, _, digest = image.partition("@")
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        repository, tag = rest.rsplit(":", 1)
        return repository, tag, digest or None
    return rest, None, digest or None


def _pinned(container: Mapping[str, Any], pod: Mapping[str, Any], config: Config) -> str | None:
    image = str(dig(container, "image", default=""))
    _, tag, digest = split_image(image)
    if tag == "latest":
        return f"image {image!r} uses the tag 'latest'"
    if tag is None and digest is None:
        return f"image {image!r} has no tag and no digest (that means 'latest')"
    return None


def _digest(container: Mapping[str, Any], pod: Mapping[str, Any], config: Config) -> str | None:
    image = str(dig(container, "image", default=""))
    if split_image(image)[2] is None:
        return f"image {image!r} is not pinned to a digest"
    return None


TYPES = frozenset(WORKLOADS)
RULES = (
    ResourceRule(
        "pod-host-isolation",
        "Pods share nothing with the node: no host network, PID or IPC namespace, host path, "
        "host port, unmasked /proc or sysctl (the restricted Pod Security Standard).",
        "mandatory",
        {},
        types=TYPES,
        check=_host_isolation,
    ),
    ResourceRule(
        "pod-non-root",
        "Containers run as a non-root numeric user.",
        "mandatory",
        {"minRunAsUser": {"type": "integer", "minimum": 1, "default": 10000}},
        types=TYPES,
        check=_per_container(
            _root,
            "a root process that escapes its container owns the node and every database "
            "credential mounted on it",
            "set securityContext run_as_non_root True and a numeric run_as_user (pod or "
            "container level), with fs_group for the volume",
        ),
    ),
    ResourceRule(
        "pod-no-privilege-escalation",
        "Containers are not privileged and cannot gain privileges.",
        "mandatory",
        {},
        types=TYPES,
        check=_per_container(
            _escalation,
            "setuid binaries or a privileged container turn a bug in a dump tool into root on "
            "the node",
            "set securityContext allow_privilege_escalation False and privileged False on "
            "every container",
        ),
    ),
    ResourceRule(
        "pod-capabilities-dropped",
        "Containers drop ALL Linux capabilities.",
        "mandatory",
        {
            "allowedCapabilities": {
                "type": "array",
                "items": {"type": "string"},
                "default": [],
            }
        },
        types=TYPES,
        check=_per_container(
            _capabilities,
            "the default capabilities (NET_RAW, CHOWN, ...) are attack surface a backup never uses",
            "set securityContext capabilities drop ['ALL'] on every container",
        ),
    ),
    ResourceRule(
        "pod-seccomp-runtime-default",
        "Containers run under the RuntimeDefault seccomp profile.",
        "mandatory",
        {},
        types=TYPES,
        check=_per_container(
            _seccomp,
            "unconfined system calls widen every kernel exploit's path out of the container",
            "set securityContext seccomp_profile type 'RuntimeDefault' on the pod",
        ),
    ),
    ResourceRule(
        "pod-resource-limits",
        "Containers set CPU and memory limits.",
        "mandatory",
        {
            "requiredLimits": {
                "type": "array",
                "items": {"type": "string"},
                "default": ["cpu", "memory"],
            }
        },
        types=TYPES,
        check=_per_container(
            _limits,
            "an unbounded dump can starve the database it is backing up, and the dump's "
            "parallelism is derived from the CPU limit",
            "set resources.limits cpu and memory on every container (databases[].resources in "
            "the stack config)",
        ),
    ),
    ResourceRule(
        "postgres-tls",
        "Connections to PostgreSQL use TLS as strictly as this stack's policy config asks.",
        "mandatory",
        {
            "allowedSslModes": {
                "type": "array",
                "items": {
                    "type": "string",
                    "enum": ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"],
                },
                "default": ["prefer", "require", "verify-ca", "verify-full"],
            }
        },
        types=TYPES,
        check=_per_container(
            _ssl_mode,
            "a dump carries every row of the database; without TLS it crosses the network "
            "readable, and 'prefer' silently falls back to clear text",
            "set postgres.sslMode in the stack config to require (or verify-full with "
            "sslRootCertSecret)",
        ),
    ),
    ResourceRule(
        "image-pinned",
        "Images are pinned to a version: no 'latest', no untagged image.",
        "mandatory",
        {},
        types=TYPES,
        check=_per_container(
            _pinned,
            "an image that moves under the same name changes pg_dump or aws-cli without review, "
            "and a restore may need the exact tools that wrote the backup",
            "pin images as 'name:version@sha256:digest' in the stack's `images` config",
        ),
    ),
    ResourceRule(
        "image-digest",
        "Images are pinned to a digest as well as a tag (advisory).",
        "advisory",
        {},
        types=TYPES,
        check=_per_container(
            _digest,
            "a tag can be re-pushed; only a digest names exactly the bytes that were reviewed",
            "append '@sha256:<digest>' from `docker buildx imagetools inspect <image>`",
        ),
    ),
)
