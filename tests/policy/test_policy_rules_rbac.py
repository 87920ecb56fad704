"""RBAC and ServiceAccount tokens, on real component output."""

from __future__ import annotations

from typing import Any

from policy_cases import assert_fires, assert_passes, backup_cronjob, one, render

from policy.rules import props as p


def _role_rules(resources: list[Any]) -> list[dict[str, Any]]:
    return one(resources, p.ROLE).props["rules"]  # type: ignore[no-any-return]


def test_no_wildcards_passes(stack: str) -> None:
    assert_passes(stack, "rbac-no-wildcards")


def test_wildcard_verb_fires() -> None:
    resources = render("production")
    _role_rules(resources)[0]["verbs"] = ["*"]
    assert_fires("production", resources, "rbac-no-wildcards", "wildcard '*' in verbs")


def test_wildcard_resource_fires() -> None:
    resources = render("staging")
    _role_rules(resources)[2]["resources"] = ["pods/*"]
    assert_fires("staging", resources, "rbac-no-wildcards", "'pods/*' in resources")


def test_no_secrets_or_exec_passes(stack: str) -> None:
    assert_passes(stack, "rbac-no-secrets-or-exec")


def test_secrets_access_fires() -> None:
    resources = render("production")
    _role_rules(resources).append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]})
    assert_fires("production", resources, "rbac-no-secrets-or-exec", "grants secrets")


def test_pods_exec_fires() -> None:
    resources = render("production")
    _role_rules(resources).append(
        {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}
    )
    hit = assert_fires("production", resources, "rbac-no-secrets-or-exec", "grants pods/exec")
    assert "pgbackup download" in hit.message


def test_service_account_token_passes(stack: str) -> None:
    assert_passes(stack, "no-service-account-token")


def test_service_account_with_token_fires() -> None:
    resources = render("production")
    [account] = [
        r
        for r in resources
        if r.type == p.SERVICE_ACCOUNT
        and r.props["metadata"]["name"] == "vocab-app-postgres-backup"
    ]
    account.props["automountServiceAccountToken"] = True  # type: ignore[index]
    assert_fires(
        "production", resources, "no-service-account-token", "mounts an API token into its pods"
    )


def test_pod_mounting_token_fires() -> None:
    resources = render("staging")
    pod = backup_cronjob(resources)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    pod["automountServiceAccountToken"] = True
    assert_fires("staging", resources, "no-service-account-token", "mount the API token")


def test_writes_that_run_code_of_ones_choosing_fire() -> None:
    resources = render("production")
    _role_rules(resources).append(
        {
            "apiGroups": [""],
            "resources": ["configmaps", "pods/ephemeralcontainers"],
            "verbs": ["patch"],
        }
    )
    assert_fires(
        "production", resources, "rbac-no-secrets-or-exec", "configmaps patch", "pods/ephemeral"
    )


def test_bindings_pass(stack: str) -> None:
    assert_passes(stack, "rbac-bindings-to-own-roles")


def test_a_binding_to_a_built_in_cluster_role_fires() -> None:
    resources = render("production")
    binding = one(resources, "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding").props
    binding["roleRef"] = {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "admin",
    }
    assert_fires("production", resources, "rbac-bindings-to-own-roles", "ClusterRole 'admin'")
