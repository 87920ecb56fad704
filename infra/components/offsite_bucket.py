"""The offsite S3 bucket and its own KMS key: versioned, encrypted with a bucket key, never public,
owner-enforced, TLS only, expiring on a lifecycle, optionally under Object Lock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra import names, policies
from infra.config import ObjectLockConfig, TransitionConfig
from infra.validate import ConfigError


@dataclass(frozen=True)
class OffsiteBucketArgs:
    bucket_name: str
    prefix: str
    retention_days: int
    noncurrent_days: int = 7
    abort_multipart_days: int = 7
    transition: TransitionConfig | None = None
    # Set at creation only; changing it later would replace the bucket (protect refuses that).
    object_lock: ObjectLockConfig | None = None
    kms_deletion_window_days: int = 30

    def __post_init__(self) -> None:
        if self.retention_days < 1:
            raise ConfigError("OffsiteBucketArgs.retention_days < 1", "keep at least one day")
        if self.object_lock is not None and self.object_lock.days < self.retention_days:
            raise ConfigError(
                "OffsiteBucketArgs.object_lock.days is shorter than the retention",
                "lock at least as long as the offsite retention",
            )


class OffsiteBucket(pulumi.ComponentResource):
    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]
    kms_key_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: OffsiteBucketArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("pgbackup:index:OffsiteBucket", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        key = aws.kms.Key(
            f"{name}-key",
            description=f"Encrypts the PostgreSQL backups in s3://{args.bucket_name}",
            enable_key_rotation=True,
            deletion_window_in_days=args.kms_deletion_window_days,
            opts=pulumi.ResourceOptions(parent=self, protect=True),
        )
        aws.kms.Alias(
            f"{name}-key-alias",
            name=names.kms_alias(args.bucket_name),
            target_key_id=key.key_id,
            opts=child,
        )
        bucket = aws.s3.Bucket(
            f"{name}-bucket",
            bucket=args.bucket_name,
            force_destroy=False,
            object_lock_enabled=args.object_lock is not None,
            opts=pulumi.ResourceOptions(parent=self, protect=True),
        )
        after_bucket = pulumi.ResourceOptions(parent=self, depends_on=[bucket])
        versioning = aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket.id,
            versioning_configuration={"status": "Enabled"},
            opts=after_bucket,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket.id,
            rules=[
                {
                    "apply_server_side_encryption_by_default": {
                        "sse_algorithm": "aws:kms",
                        "kms_master_key_id": key.arn,
                    },
                    # One data key per bucket instead of per object: far fewer KMS calls.
                    "bucket_key_enabled": True,
                }
            ],
            opts=after_bucket,
        )
        public_block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access-block",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=after_bucket,
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket.id,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=after_bucket,
        )
        aws.s3.BucketPolicy(
            f"{name}-tls-only",
            bucket=bucket.id,
            policy=bucket.arn.apply(policies.tls_only_bucket_policy),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public_block]),
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket.id,
            rules=lifecycle_rules(args),
            # Lifecycle on a versioned bucket: versioning must exist first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]),
        )
        if args.object_lock is not None:
            aws.s3.BucketObjectLockConfiguration(
                f"{name}-object-lock",
                bucket=bucket.id,
                object_lock_enabled="Enabled",
                rule={
                    "default_retention": {
                        "mode": args.object_lock.mode,
                        "days": args.object_lock.days,
                    }
                },
                opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]),
            )
        self.bucket_name = bucket.bucket
        self.bucket_arn = bucket.arn
        self.kms_key_arn = key.arn
        self.register_outputs(
            {
                "bucket_name": self.bucket_name,
                "bucket_arn": self.bucket_arn,
                "kms_key_arn": self.kms_key_arn,
            }
        )


def lifecycle_rules(args: OffsiteBucketArgs) -> Any:
    prefix = f"{args.prefix.strip('/')}/"
    expire: dict[str, object] = {
        "id": "expire-backups",
        "status": "Enabled",
        "filter": {"prefix": prefix},
        "expiration": {"days": args.retention_days},
        # In a versioned bucket an expiration only adds a delete marker; this removes the data.
        "noncurrent_version_expiration": {"noncurrent_days": args.noncurrent_days},
        "abort_incomplete_multipart_upload": {"days_after_initiation": args.abort_multipart_days},
    }
    if args.transition is not None:
        expire["transitions"] = [
            {"days": args.transition.days, "storage_class": args.transition.storage_class}
        ]
    # S3 refuses expired_object_delete_marker together with days in one rule: a rule of its own.
    markers: dict[str, object] = {
        "id": "remove-expired-delete-markers",
        "status": "Enabled",
        "filter": {"prefix": prefix},
        "expiration": {"expired_object_delete_marker": True},
    }
    return [expire, markers]
