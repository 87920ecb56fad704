"""Who the pods and operators are in the namespace: a ServiceAccount for backup pods (no API token:
they never call the API), one for restore/drill pods (a different IAM identity: the reader), and
the namespaced Role the restore and drill work needs — nothing more, no wildcards, no Secrets, no
`pods/exec`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra.validate import ConfigError

IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"


@dataclass(frozen=True)
class KubernetesAccessArgs:
    namespace: str
    backup_service_account: str
    restore_service_account: str
    role_name: str
    cronjob_names: list[str]
    app_deployments: list[str] = field(default_factory=list)
    operator_group: str = ""
    # IRSA: the IAM role each ServiceAccount assumes (None in accessKey mode).
    backup_role_arn: pulumi.Input[str] | None = None
    restore_role_arn: pulumi.Input[str] | None = None
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.cronjob_names:
            raise ConfigError("KubernetesAccessArgs.cronjob_names is empty", "pass the CronJobs")


def restore_rules(cronjobs: list[str], deployments: list[str]) -> Any:
    """Exactly what the restore and drill jobs use (see design: "Restore/drill RBAC")."""
    rules: list[dict[str, Any]] = [
        {
            "api_groups": ["batch"],
            "resources": ["cronjobs"],
            "resource_names": cronjobs,
            "verbs": ["get"],
        },
        # `create` cannot be limited by name; creating Jobs can mount any Secret of the namespace
        # (the README's security section says so).
        {
            "api_groups": ["batch"],
            "resources": ["jobs"],
            "verbs": ["create", "get", "list", "watch", "delete"],
        },
        {"api_groups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
        {"api_groups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    ]
    if deployments:
        rules += [
            {
                "api_groups": ["apps"],
                "resources": ["deployments"],
                "resource_names": deployments,
                "verbs": ["get"],
            },
            {
                "api_groups": ["apps"],
                "resources": ["deployments/scale"],
                "resource_names": deployments,
                "verbs": ["get", "patch"],
            },
        ]
    return rules


class KubernetesAccess(pulumi.ComponentResource):
    backup_service_account: pulumi.Output[str]
    restore_service_account: pulumi.Output[str]
    role_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: KubernetesAccessArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("pgbackup:index:KubernetesAccess", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        def account(suffix: str, sa_name: str, role_arn: pulumi.Input[str] | None) -> Any:
            annotations = {IRSA_ANNOTATION: role_arn} if role_arn is not None else {}
            return k8s.core.v1.ServiceAccount(
                f"{name}-{suffix}",
                metadata={
                    "name": sa_name,
                    "namespace": args.namespace,
                    "labels": args.labels,
                    "annotations": annotations,
                },
                automount_service_account_token=False,
                opts=child,
            )

        backup_sa = account("backup-sa", args.backup_service_account, args.backup_role_arn)
        restore_sa = account("restore-sa", args.restore_service_account, args.restore_role_arn)
        role_metadata: Any = {
            "name": args.role_name,
            "namespace": args.namespace,
            "labels": args.labels,
        }
        role = k8s.rbac.v1.Role(
            f"{name}-restore-role",
            metadata=role_metadata,
            rules=restore_rules(args.cronjob_names, args.app_deployments),
            opts=child,
        )
        subjects: Any = [
            {
                "kind": "ServiceAccount",
                "name": args.restore_service_account,
                "namespace": args.namespace,
            }
        ]
        if args.operator_group:
            subjects.append(
                {
                    "kind": "Group",
                    "name": args.operator_group,
                    "api_group": "rbac.authorization.k8s.io",
                }
            )
        k8s.rbac.v1.RoleBinding(
            f"{name}-restore-binding",
            metadata=role_metadata,
            role_ref={
                "api_group": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": args.role_name,
            },
            subjects=subjects,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role, restore_sa]),
        )
        self.backup_service_account = backup_sa.metadata.apply(
            lambda m: m.name or args.backup_service_account
        )
        self.restore_service_account = restore_sa.metadata.apply(
            lambda m: m.name or args.restore_service_account
        )
        self.role_name = role.metadata.apply(lambda m: m.name or args.role_name)
        self.register_outputs(
            {
                "backup_service_account": self.backup_service_account,
                "restore_service_account": self.restore_service_account,
                "role_name": self.role_name,
            }
        )
