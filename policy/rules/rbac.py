"""Namespaced RBAC that grants only what restores and drills use: no wildcards, no Secrets, no
exec into pods, and no API token in pods that never call the API."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

from .model import Config, Resource, ResourceRule, StackRule, Violation, explain
from .props import (
    CLUSTER_ROLE,
    SERVICE_ACCOUNT,
    as_strings,
    dig,
    items,
    k8s_name,
    of_type,
    pod_spec,
)

ROLE_TYPES = frozenset({"kubernetes:rbac.authorization.k8s.io/v1:Role", CLUSTER_ROLE})


def _rules(resource: Resource) -> list[Mapping[str, Any]]:
    return [r for r in items(dig(resource.props, "rules")) if isinstance(r, Mapping)]


def _wildcards(resource: Resource, config: Config) -> Iterator[str]:
    name = k8s_name(resource)
    for index, rule in enumerate(_rules(resource)):
        for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
            wild = [v for v in as_strings(dig(rule, field)) if "*" in v]
            if wild:
                yield explain(
                    f"Role {name!r} rule {index} has the wildcard {wild[0]!r} in {field}",
                    "a wildcard grants whatever the API adds later, Secrets and exec included, "
                    "to every restore job and operator bound to the Role",
                    f"list the {field} the restore and drill jobs use by name",
                )


def _sensitive(resource: Resource, config: Config) -> Iterator[str]:
    name = k8s_name(resource)
    resources = [str(r) for r in config["forbiddenResources"]]
    verbs = [str(v) for v in config["forbiddenVerbs"]]
    writes: Mapping[str, Any] = config["forbiddenWrites"]
    for index, rule in enumerate(_rules(resource)):
        granted = as_strings(dig(rule, "resources"))
        hits = [g for g in granted if any(fnmatchcase(f, g) for f in resources)]
        hits += [v for v in as_strings(dig(rule, "verbs")) if v in verbs]
        for target in granted:
            written = [v for v in as_strings(dig(rule, "verbs")) if v in writes.get(target, [])]
            hits += [f"{target} {verb}" for verb in written]
        if hits:
            yield explain(
                f"Role {name!r} rule {index} grants {', '.join(hits)}",
                "reading Secrets exposes the database and AWS credentials; exec/attach (or an "
                "ephemeral container) opens a shell in the database pod; a pod created directly, "
                "or a rewritten scripts ConfigMap or CronJob, runs whatever it likes with the "
                "backup's credentials; escalate/bind/impersonate lift any limit",
                "drop these from the Role: backups are fetched with `pgbackup download`, not "
                "kubectl cp/exec, and credentials are mounted into the pods that need them",
            )


BINDINGS = frozenset(
    {
        "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding",
        "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding",
    }
)


def _bindings(resources: Sequence[Resource], config: Config) -> Iterator[Violation]:
    """Every binding grants a Role this stack declares (so the Role rules above review what it
    grants), never a built-in or outside ClusterRole (admin, edit, cluster-admin...)."""
    declared = {(r.type.rsplit(":", 1)[-1], k8s_name(r)) for r in of_type(resources, *ROLE_TYPES)}
    for binding in of_type(resources, *BINDINGS):
        kind = str(dig(binding.props, "roleRef", "kind", default="?"))
        role = str(dig(binding.props, "roleRef", "name", default="?"))
        cluster_wide = binding.type.endswith(":ClusterRoleBinding")
        if cluster_wide or (kind, role) not in declared:
            yield Violation(
                explain(
                    f"{binding.label} {k8s_name(binding)!r} binds the {kind} {role!r}"
                    + (" cluster-wide" if cluster_wide else ", which this stack does not declare"),
                    "a built-in or outside role (admin, edit, cluster-admin) grants Secrets, exec "
                    "and more, and nothing here reviews what it holds",
                    "bind only the stack's own namespaced Role (its rules are checked above)",
                ),
                binding,
            )


def _service_account_tokens(resources: Sequence[Resource], config: Config) -> Iterator[Violation]:
    allowed = {str(a) for a in config["allowTokenFor"]}
    accounts = {k8s_name(sa): sa for sa in of_type(resources, SERVICE_ACCOUNT)}
    why = (
        "a mounted token lets anyone who gets code running in the pod talk to the Kubernetes "
        "API as it; these pods never call the API (IRSA projects its own token)"
    )
    for name, account in accounts.items():
        if name not in allowed and dig(account.props, "automountServiceAccountToken") is not False:
            yield Violation(
                explain(
                    f"ServiceAccount {name!r} mounts an API token into its pods",
                    why,
                    "set automount_service_account_token False on the ServiceAccount",
                ),
                account,
            )
    for resource in resources:
        spec = pod_spec(resource)
        if spec is None:
            continue
        account_name = str(dig(spec, "serviceAccountName", default="default"))
        if account_name in allowed:
            continue
        mount = dig(spec, "automountServiceAccountToken")
        if mount is None and account_name in accounts:
            mount = dig(accounts[account_name].props, "automountServiceAccountToken")
        if mount is not False:
            yield Violation(
                explain(
                    f"{resource.label}: pods of {k8s_name(resource)!r} mount the API token of "
                    f"ServiceAccount {account_name!r}",
                    why,
                    "set automount_service_account_token False in the pod spec, or list the "
                    "ServiceAccount in allowTokenFor if the pod really calls the API",
                ),
                resource,
            )


RULES = (
    ResourceRule(
        "rbac-no-wildcards",
        "Roles name their API groups, resources and verbs: no wildcards.",
        "mandatory",
        {},
        types=ROLE_TYPES,
        check=_wildcards,
    ),
    ResourceRule(
        "rbac-no-secrets-or-exec",
        "Roles grant no access to Secrets, pods/exec or privilege-lifting verbs.",
        "mandatory",
        {
            "forbiddenResources": {
                "type": "array",
                "items": {"type": "string"},
                "default": [
                    "secrets",
                    "pods/exec",
                    "pods/attach",
                    "pods/ephemeralcontainers",
                    "pods/portforward",
                    "serviceaccounts/token",
                ],
            },
            "forbiddenVerbs": {
                "type": "array",
                "items": {"type": "string"},
                "default": ["escalate", "bind", "impersonate"],
            },
            "forbiddenWrites": {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
                "default": {
                    "pods": ["create", "update", "patch"],
                    "configmaps": ["create", "update", "patch"],
                    "cronjobs": ["create", "update", "patch"],
                    "roles": ["create", "update", "patch"],
                    "rolebindings": ["create", "update", "patch"],
                },
                "description": "Resource: verbs that would let a holder run code of its choosing.",
            },
        },
        types=ROLE_TYPES,
        check=_sensitive,
    ),
    StackRule(
        "rbac-bindings-to-own-roles",
        "Bindings grant only the stack's own namespaced Roles: no built-in or outside "
        "ClusterRole, no cluster-wide binding.",
        "mandatory",
        {},
        _bindings,
    ),
    StackRule(
        "no-service-account-token",
        "Pods that never call the Kubernetes API get no ServiceAccount token.",
        "mandatory",
        {
            "allowTokenFor": {
                "type": "array",
                "items": {"type": "string"},
                "default": [],
                "description": "ServiceAccounts whose pods do call the API.",
            }
        },
        _service_account_tokens,
    ),
)
