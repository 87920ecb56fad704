"""The program: read the stack's config once, declare the stack, export what the jobs need."""

from __future__ import annotations

import pulumi

from infra.components.postgres_backup import PostgresBackup, PostgresBackupArgs
from infra.components.scripts_configmap import read_scripts
from infra.config import StackConfig, from_pulumi


def declare(config: StackConfig) -> PostgresBackup:
    stack = PostgresBackup(
        "postgres-backup", PostgresBackupArgs(config=config, scripts=read_scripts())
    )
    pulumi.export("namespace", stack.namespace)
    pulumi.export("cronJobNames", stack.cronjob_names)
    pulumi.export("pvcNames", stack.pvc_names)
    pulumi.export("configMapNames", stack.configmap_names)
    pulumi.export("bucketName", stack.bucket_name)
    pulumi.export("kmsKeyArn", stack.kms_key_arn)
    # IRSA: IAM role ARNs; accessKey mode: IAM user ARNs (their keys are in Kubernetes Secrets).
    pulumi.export("writerRoleArn", stack.writer_arn)
    pulumi.export("readerRoleArn", stack.reader_arn)
    pulumi.export("backupServiceAccount", stack.backup_service_account)
    pulumi.export("restoreServiceAccount", stack.restore_service_account)
    return stack


def main() -> None:
    declare(from_pulumi())
