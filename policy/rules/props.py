"""Reading engine properties safely.

Online, `pulumi_policy` hands the rules read-only Mapping/Sequence proxies (not dicts or lists) that
raise `UnknownValueError` when a value is not known yet at preview: these helpers accept any
Mapping/Sequence and let that error through, so the caller can say "cannot judge yet".
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .model import Resource

CRONJOB = "kubernetes:batch/v1:CronJob"
JOB = "kubernetes:batch/v1:Job"
POD = "kubernetes:core/v1:Pod"
PVC = "kubernetes:core/v1:PersistentVolumeClaim"
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
ROLE = "kubernetes:rbac.authorization.k8s.io/v1:Role"
CLUSTER_ROLE = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole"
PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
WORKLOADS = {
    CRONJOB: ("spec", "jobTemplate", "spec", "template", "spec"),
    JOB: ("spec", "template", "spec"),
    POD: ("spec",),
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template", "spec"),
}

BUCKET = "aws:s3/bucket:Bucket"
BUCKET_VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
BUCKET_SSE = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
)
BUCKET_PUBLIC_ACCESS = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
BUCKET_LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
BUCKET_OBJECT_LOCK = "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration"
IAM_POLICY = "aws:iam/policy:Policy"
IAM_ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
IAM_USER_POLICY = "aws:iam/userPolicy:UserPolicy"
IAM_GROUP_POLICY = "aws:iam/groupPolicy:GroupPolicy"
IAM_ROLE = "aws:iam/role:Role"
IAM_POLICY_TYPES = frozenset(
    {IAM_POLICY, IAM_ROLE_POLICY, IAM_USER_POLICY, IAM_GROUP_POLICY, IAM_ROLE}
)


def is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def dig(value: Any, *path: str | int, default: Any = None) -> Any:
    """`value[p0][p1]...`, or `default` where a key or index is missing."""
    for key in path:
        if isinstance(key, int):
            if not is_list(value) or key >= len(value):
                return default
        elif not isinstance(value, Mapping) or key not in value:
            return default
        value = value[key]
    return default if value is None else value


def items(value: Any) -> list[Any]:
    """A list property as a list (missing or null: empty)."""
    return [value[i] for i in range(len(value))] if is_list(value) else []


def k8s_name(resource: Resource) -> str:
    return str(dig(resource.props, "metadata", "name", default=resource.name))


def labels_match(labels: Any, wanted: Mapping[str, str]) -> bool:
    return bool(wanted) and all(dig(labels, k) == v for k, v in wanted.items())


def pod_spec(resource: Resource) -> Mapping[str, Any] | None:
    path = WORKLOADS.get(resource.type)
    if path is None:
        return None
    spec = dig(resource.props, *path)
    return spec if isinstance(spec, Mapping) else None


def containers(spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(kind, container) for every container of a pod spec, init containers included."""
    for kind in ("initContainers", "containers", "ephemeralContainers"):
        for container in items(dig(spec, kind)):
            if isinstance(container, Mapping):
                yield kind, container


def container_label(resource: Resource, kind: str, container: Mapping[str, Any]) -> str:
    noun = {"initContainers": "init container", "ephemeralContainers": "ephemeral container"}
    return f"{noun.get(kind, 'container')} {dig(container, 'name', default='?')!r}"


def policy_document(value: Any) -> Mapping[str, Any] | None:
    """An IAM policy property (a JSON string, or already a mapping) as a mapping."""
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str) and value.strip():
        try:
            doc = json.loads(value)
        except ValueError:
            return None
        return doc if isinstance(doc, Mapping) else None
    return None


def statements(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found = dig(doc, "Statement")
    if isinstance(found, Mapping):
        return [found]
    return [s for s in items(found) if isinstance(s, Mapping)]


def as_strings(value: Any) -> list[str]:
    """IAM's "string or list of strings" as a list."""
    if isinstance(value, str):
        return [value]
    return [str(v) for v in items(value)]


def iam_documents(resource: Resource) -> list[tuple[str, Mapping[str, Any]]]:
    """(label, document) of every policy document a resource carries."""
    if resource.type == IAM_ROLE:
        found = []
        for inline in items(dig(resource.props, "inlinePolicies")):
            doc = policy_document(dig(inline, "policy"))
            if doc is not None:
                found.append((f"inline policy {dig(inline, 'name', default='?')!r}", doc))
        return found
    doc = policy_document(dig(resource.props, "policy"))
    return [("policy", doc)] if doc is not None else []


def of_type(resources: Sequence[Resource], *types: str) -> list[Resource]:
    return [r for r in resources if r.type in types]


def refers_to(resource: Resource, prop: str, target: Resource) -> bool:
    """Whether `resource.<prop>` names `target` (a bucket sub-resource's `bucket`, say).

    The engine's property dependencies answer even while ids are unknown; otherwise the value must
    equal the target's name, id or ARN.
    """
    deps = resource.dependencies.get(prop, ())
    if deps:  # the engine knows the links: no need to read a value that may be unknown
        return target.urn in deps or target.name in deps
    value = dig(resource.props, prop)
    if not isinstance(value, str):
        return False
    known = {target.name, target.urn}
    for key in ("bucket", "id", "arn", "name"):
        found = dig(target.props, key)
        if isinstance(found, str):
            known.add(found)
    return value in known


def attached(resources: Sequence[Resource], bucket: Resource, type_token: str) -> list[Resource]:
    """The sub-resources of `type_token` that configure `bucket`."""
    return [r for r in of_type(resources, type_token) if refers_to(r, "bucket", bucket)]


def bucket_name(bucket: Resource) -> str:
    return str(dig(bucket.props, "bucket", default=bucket.name))
