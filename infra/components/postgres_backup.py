"""The whole stack: offsite bucket and credentials, the namespace's ServiceAccounts and restore
Role, and one DatabaseBackup per configured database."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra import policies
from infra.components.backup_cronjob import OffsiteTarget
from infra.components.database_backup import DatabaseBackup, DatabaseBackupArgs
from infra.components.kubernetes_access import KubernetesAccess, KubernetesAccessArgs
from infra.components.offsite_bucket import OffsiteBucket, OffsiteBucketArgs
from infra.components.offsite_credentials import (
    OffsiteCredentials,
    OffsiteCredentialsArgs,
    ReadSource,
)
from infra.config import StackConfig


@dataclass(frozen=True)
class PostgresBackupArgs:
    config: StackConfig
    scripts: Mapping[str, str]


class PostgresBackup(pulumi.ComponentResource):
    namespace: pulumi.Output[str]
    cronjob_names: pulumi.Output[list[str]]
    pvc_names: pulumi.Output[list[str]]
    configmap_names: pulumi.Output[list[str]]
    bucket_name: pulumi.Output[str]
    kms_key_arn: pulumi.Output[str]
    writer_arn: pulumi.Output[str]
    reader_arn: pulumi.Output[str]
    backup_service_account: pulumi.Output[str]
    restore_service_account: pulumi.Output[str]

    def __init__(
        self, name: str, args: PostgresBackupArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("pgbackup:index:PostgresBackup", name, None, opts)
        cfg = args.config
        labels = {
            "app.kubernetes.io/name": "pgbackup",
            "app.kubernetes.io/instance": cfg.release,
            "app.kubernetes.io/managed-by": "pulumi",
        }
        child = pulumi.ResourceOptions(parent=self)
        if cfg.kubeconfig is not None:
            # Disaster recovery: an explicit cluster, and a refresh that survives the lost one.
            provider = k8s.Provider(
                f"{name}-cluster",
                kubeconfig=cfg.kubeconfig,
                context=cfg.kube_context,
                delete_unreachable=True,
                opts=child,
            )
            child = pulumi.ResourceOptions(parent=self, providers={"kubernetes": provider})
        off = cfg.offsite
        bucket = OffsiteBucket(
            f"{name}-offsite",
            OffsiteBucketArgs(
                bucket_name=off.bucket_name,
                prefix=off.prefix,
                retention_days=off.retention_days,
                noncurrent_days=off.noncurrent_days,
                abort_multipart_days=off.abort_multipart_days,
                transition=off.transition,
                object_lock=off.object_lock,
                kms_deletion_window_days=off.kms_deletion_window_days,
            ),
            opts=child,
        )
        creds = off.credentials
        credentials = OffsiteCredentials(
            f"{name}-credentials",
            OffsiteCredentialsArgs(
                bucket_name=off.bucket_name,
                bucket_arn=bucket.bucket_arn,
                prefix=off.prefix,
                kms_key_arn=bucket.kms_key_arn,
                namespace=cfg.namespace,
                mode=creds.mode,
                backup_service_account=cfg.backup_service_account,
                restore_service_account=cfg.restore_service_account,
                oidc_provider_arn=creds.oidc_provider_arn,
                oidc_issuer=creds.oidc_issuer,
                writer_secret_name=creds.writer_secret_name,
                reader_secret_name=creds.reader_secret_name,
                extra_read=[
                    ReadSource(policies.bucket_arn(x.bucket_name), x.prefix, x.kms_key_arn)
                    for x in cfg.cross_stack_read
                ],
                labels=labels,
            ),
            opts=child,
        )
        access = KubernetesAccess(
            f"{name}-access",
            KubernetesAccessArgs(
                namespace=cfg.namespace,
                backup_service_account=cfg.backup_service_account,
                restore_service_account=cfg.restore_service_account,
                role_name=cfg.restore_role,
                # `pgbackup backup` and `pgbackup drill` read these to make Jobs from them.
                cronjob_names=[db.cronjob_name for db in cfg.databases]
                + ([db.drill_cronjob_name for db in cfg.databases] if cfg.drill.enabled else []),
                app_deployments=list(cfg.app_deployments),
                operator_group=cfg.operator_group,
                backup_role_arn=credentials.writer_role_arn,
                restore_role_arn=credentials.reader_role_arn,
                labels=labels,
            ),
            opts=child,
        )
        target = OffsiteTarget(
            bucket=bucket.bucket_name,
            prefix=off.prefix,
            region=cfg.region,
            kms_key_arn=bucket.kms_key_arn,
            endpoint_url=off.endpoint_url,
            credentials_secret=credentials.writer_secret_name,
        )
        databases = [
            DatabaseBackup(
                f"{name}-{db.key}",
                DatabaseBackupArgs(
                    stack=cfg,
                    database=db,
                    scripts=args.scripts,
                    service_account_name=access.backup_service_account,
                    drill_service_account_name=access.restore_service_account,
                    offsite=target,
                    labels=labels,
                ),
                opts=child,
            )
            for db in cfg.databases
        ]
        self.namespace = pulumi.Output.from_input(cfg.namespace)
        self.cronjob_names = pulumi.Output.all(*[d.cronjob_name for d in databases])
        self.pvc_names = pulumi.Output.all(*[d.pvc_name for d in databases])
        self.configmap_names = pulumi.Output.all(*[d.configmap_name for d in databases])
        self.bucket_name = bucket.bucket_name
        self.kms_key_arn = bucket.kms_key_arn
        self.writer_arn = credentials.writer_arn
        self.reader_arn = credentials.reader_arn
        self.backup_service_account = access.backup_service_account
        self.restore_service_account = access.restore_service_account
        self.register_outputs(
            {
                "namespace": self.namespace,
                "cronjob_names": self.cronjob_names,
                "pvc_names": self.pvc_names,
                "bucket_name": self.bucket_name,
                "writer_arn": self.writer_arn,
                "reader_arn": self.reader_arn,
            }
        )
