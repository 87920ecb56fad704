"""The offsite bucket's hardening. Stack rules: each relates a Bucket to the resources that
configure it (pulumi-aws v7 configures versioning, encryption, ... through separate resources)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from .model import Config, NotApplicable, Resource, StackRule, Violation, explain
from .props import (
    BUCKET,
    BUCKET_LIFECYCLE,
    BUCKET_OBJECT_LOCK,
    BUCKET_POLICY,
    BUCKET_PUBLIC_ACCESS,
    BUCKET_SSE,
    BUCKET_VERSIONING,
    as_strings,
    attached,
    bucket_name,
    dig,
    items,
    of_type,
    policy_document,
    statements,
)


def _buckets(resources: Sequence[Resource]) -> list[Resource]:
    buckets = of_type(resources, BUCKET)
    if not buckets:
        raise NotApplicable("the stack declares no S3 bucket")
    return buckets


def _versioning(resources: Sequence[Resource], config: Config) -> Iterator[Violation]:
    for bucket in _buckets(resources):
        states = [
            dig(v.props, "versioningConfiguration", "status")
            for v in attached(resources, bucket, BUCKET_VERSIONING)
        ]
        if "Enabled" not in states:
            found = f" (status {states[0]!r})" if states else ""
            yield Violation(
                explain(
                    f"bucket {bucket_name(bucket)!r} has no versioning enabled{found}",
                    "without versions an overwrite or a delete destroys a backup set for good",
                    "declare aws.s3.BucketVersioning for the bucket with "
                    "versioning_configuration status 'Enabled'",
                ),
                bucket,
            )


def _sse_kms(resources: Sequence[Resource], config: Config) -> Iterator[Violation]:
    fix = (
        "declare aws.s3.BucketServerSideEncryptionConfiguration with sse_algorithm 'aws:kms', "
        "kms_master_key_id set to the stack's own KMS key and bucket_key_enabled True"
    )
    why = (
        "the dumps hold the whole database; a key of our own keeps them unreadable to anyone "
        "outside its key policy and lets access be revoked"
    )
    for bucket in _buckets(resources):
        name = bucket_name(bucket)
        rules = [
            rule
            for sse in attached(resources, bucket, BUCKET_SSE)
            for rule in items(dig(sse.props, "rules"))
        ]
        kms = [
            rule
            for rule in rules
            if dig(rule, "applyServerSideEncryptionByDefault", "sseAlgorithm")
            in ("aws:kms", "aws:kms:dsse")
        ]
        if not kms:
            yield Violation(
                explain(f"bucket {name!r} is not encrypted with SSE-KMS", why, fix), bucket
            )
            continue
        rule = kms[0]
        key = dig(rule, "applyServerSideEncryptionByDefault", "kmsMasterKeyId")
        # alias/aws/s3 (or its ARN) names the AWS-managed key: its policy cannot be changed.
        aws_managed = isinstance(key, str) and "alias/aws/" in key
        if config.get("requireCustomerKey", True) and (not key or aws_managed):
            named = f"({key})" if key else "(no kms_master_key_id)"
            yield Violation(
                explain(f"bucket {name!r} uses SSE-KMS with the AWS-managed key {named}", why, fix),
                bucket,
            )
        if config.get("requireBucketKey", True) and dig(rule, "bucketKeyEnabled") is not True:
            yield Violation(
                explain(
                    f"bucket {name!r} has SSE-KMS without an S3 Bucket Key",
                    "without it every object read and write is a KMS request: cost and "
                    "throttling during a large upload or restore",
                    "set bucket_key_enabled True on the encryption rule",
                ),
                bucket,
            )


PUBLIC_ACCESS_FLAGS = (
    "blockPublicAcls",
    "blockPublicPolicy",
    "ignorePublicAcls",
    "restrictPublicBuckets",
)


def _public_access(resources: Sequence[Resource], config: Config) -> Iterator[Violation]:
    for bucket in _buckets(resources):
        blocks = attached(resources, bucket, BUCKET_PUBLIC_ACCESS)
        missing = list(PUBLIC_ACCESS_FLAGS)
        for block in blocks:
            missing = [f for f in missing if dig(block.props, f) is not True]
        if missing:
            what = (
                f"bucket {bucket_name(bucket)!r} does not block public access: "
                + ", ".join(missing)
                + " not True"
                if blocks
                else f"bucket {bucket_name(bucket)!r} has no public access block"
            )
            yield Violation(
                explain(
                    what,
                    "one public ACL or policy statement would publish every database dump",
                    "declare aws.s3.BucketPublicAccessBlock for the bucket with all four of "
                    "block_public_acls, block_public_policy, ignore_public_acls and "
                    "restrict_public_buckets True",
                ),
                bucket,
            )


def _denies_insecure_transport(statement: object, bucket: str) -> bool:
    """A Deny of every S3 action without TLS, on this bucket and its objects."""
    if dig(statement, "Effect") != "Deny":
        return False
    principal = dig(statement, "Principal")
    if principal != "*" and as_strings(dig(principal, "AWS")) != ["*"]:
        return False
    if not {"s3:*", "*"} & set(as_strings(dig(statement, "Action"))):
        return False
    for operator in ("Bool", "BoolIfExists"):
        values = dig(statement, "Condition", operator, "aws:SecureTransport")
        if values is not None and [str(v).lower() for v in as_strings(values) or [values]] == [
            "false"
        ]:
            # Any partition (aws, aws-cn, aws-us-gov): the name after `:s3:::` is what counts.
            targets = {t.split(":s3:::", 1)[-1] for t in as_strings(dig(statement, "Resource"))}
            return bool({bucket, "*"} & targets) and bool({f"{bucket}/*", "*"} & targets)
    return False


def _tls_only(resources: Sequence[Resource], config: Config) -> Iterator[Violation]:
    for bucket in _buckets(resources):
        policies = attached(resources, bucket, BUCKET_POLICY)
        docs = [policy_document(dig(p.props, "policy")) for p in policies]
        name = bucket_name(bucket)
        if not any(
            _denies_insecure_transport(s, name) for doc in docs if doc for s in statements(doc)
        ):
            yield Violation(
                explain(
                    f"bucket {bucket_name(bucket)!r} accepts requests without TLS",
                    "credentials and dumps could cross the network in clear text",
                    "attach an aws.s3.BucketPolicy with a statement Effect Deny, Principal '*', "
                    "Action 's3:*', Resource [bucket ARN, bucket ARN + '/*'], Condition "
                    "{'Bool': {'aws:SecureTransport': 'false'}}",
                ),
                bucket,
            )


def _enabled_rules(resources: Sequence[Resource], bucket: Resource) -> list[object]:
    return [
        rule
        for lifecycle in attached(resources, bucket, BUCKET_LIFECYCLE)
        for rule in items(dig(lifecycle.props, "rules"))
        if dig(rule, "status") == "Enabled"
    ]


def _abort_multipart(resources: Sequence[Resource], config: Config) -> Iterator[Violation]:
    limit = int(config["maxDaysAfterInitiation"])
    for bucket in _buckets(resources):
        days = [
            dig(rule, "abortIncompleteMultipartUpload", "daysAfterInitiation")
            for rule in _enabled_rules(resources, bucket)
        ]
        if not any(isinstance(d, int | float) and 0 < d <= limit for d in days):
            yield Violation(
                explain(
                    f"bucket {bucket_name(bucket)!r} never aborts incomplete multipart uploads "
                    f"within {limit} days",
                    "an interrupted upload leaves invisible parts that are billed forever",
                    "add an enabled rule to the bucket's aws.s3.BucketLifecycleConfiguration with "
                    f"abort_incomplete_multipart_upload days_after_initiation <= {limit}",
                ),
                bucket,
            )


def _noncurrent_cleanup(resources: Sequence[Resource], config: Config) -> Iterator[Violation]:
    for bucket in _buckets(resources):
        rules = _enabled_rules(resources, bucket)
        if not any(dig(r, "noncurrentVersionExpiration", "noncurrentDays") for r in rules):
            yield Violation(
                explain(
                    f"bucket {bucket_name(bucket)!r} never expires noncurrent versions",
                    "in a versioned bucket an expiration only adds a delete marker; the old "
                    "versions stay and are billed forever",
                    "add noncurrent_version_expiration (noncurrent_days) to an enabled lifecycle "
                    "rule, with expiration expired_object_delete_marker to clean up markers",
                ),
                bucket,
            )


def expiration_days(resources: Sequence[Resource], bucket: Resource) -> list[int]:
    """The expiration ages (days) of the bucket's enabled lifecycle rules."""
    return [
        int(days)
        for rule in _enabled_rules(resources, bucket)
        if isinstance(days := dig(rule, "expiration", "days"), int | float) and days > 0
    ]


def _retention_days(lock: Resource) -> int | None:
    retention = dig(lock.props, "rule", "defaultRetention")
    days, years = dig(retention, "days"), dig(retention, "years")
    if isinstance(days, int | float):
        return int(days)
    if isinstance(years, int | float):
        return int(years) * 365
    return None


def _object_lock(resources: Sequence[Resource], config: Config) -> Iterator[Violation]:
    if not config.get("required"):
        raise NotApplicable("the policy config of this stack does not require Object Lock")
    modes = [str(m) for m in config.get("modes") or ("COMPLIANCE", "GOVERNANCE")]
    why = (
        "without it anyone holding delete rights (or a compromised account) can erase every "
        "offsite copy; the policy config of this stack requires it"
    )
    for bucket in _buckets(resources):
        name = bucket_name(bucket)
        if dig(bucket.props, "objectLockEnabled") is not True:
            yield Violation(
                explain(
                    f"bucket {name!r} is created without Object Lock",
                    why,
                    "set object_lock_enabled True on the aws.s3.Bucket (it can only be set when "
                    "the bucket is created: plan the migration to a new bucket)",
                ),
                bucket,
            )
        locks = [
            lock
            for lock in attached(resources, bucket, BUCKET_OBJECT_LOCK)
            if dig(lock.props, "objectLockEnabled", default="Enabled") == "Enabled"
        ]
        fix = (
            "declare aws.s3.BucketObjectLockConfiguration with rule default_retention "
            f"mode {' or '.join(modes)} and days at least the offsite retention"
        )
        if not locks:
            yield Violation(explain(f"bucket {name!r} has no default retention", why, fix), bucket)
            continue
        mode = dig(locks[0].props, "rule", "defaultRetention", "mode")
        if mode not in modes:
            yield Violation(
                explain(
                    f"bucket {name!r} locks objects in mode {mode!r}, not {' or '.join(modes)}",
                    "GOVERNANCE retention can be lifted by anyone allowed to bypass it",
                    fix,
                ),
                bucket,
            )
        days = _retention_days(locks[0])
        floor = max([int(config.get("minDays", 0))] + expiration_days(resources, bucket))
        if days is None or days < floor:
            yield Violation(
                explain(
                    f"bucket {name!r} locks objects for {days or 0} days, less than {floor} "
                    "(the offsite retention or the configured minimum)",
                    "a set becomes deletable before it expires, so the lock does not protect "
                    "the whole retention window",
                    fix,
                ),
                bucket,
            )


RULES = (
    StackRule(
        "s3-bucket-versioning",
        "Offsite buckets keep every version of every backup object.",
        "mandatory",
        {},
        _versioning,
    ),
    StackRule(
        "s3-bucket-sse-kms",
        "Offsite buckets encrypt with SSE-KMS under the stack's own key, with a Bucket Key.",
        "mandatory",
        {
            "requireCustomerKey": {"type": "boolean", "default": True},
            "requireBucketKey": {"type": "boolean", "default": True},
        },
        _sse_kms,
    ),
    StackRule(
        "s3-public-access-blocked",
        "Offsite buckets block all four kinds of public access.",
        "mandatory",
        {},
        _public_access,
    ),
    StackRule(
        "s3-tls-only",
        "Offsite bucket policies deny every request not made over TLS.",
        "mandatory",
        {},
        _tls_only,
    ),
    StackRule(
        "s3-lifecycle-abort-multipart",
        "Offsite bucket lifecycles abort incomplete multipart uploads.",
        "mandatory",
        {"maxDaysAfterInitiation": {"type": "integer", "minimum": 1, "default": 7}},
        _abort_multipart,
    ),
    StackRule(
        "s3-object-lock",
        "Where the stack's policy config requires it, offsite objects are locked for at least "
        "the retention.",
        "mandatory",
        {
            "required": {"type": "boolean", "default": False},
            "modes": {
                "type": "array",
                "items": {"type": "string", "enum": ["COMPLIANCE", "GOVERNANCE"]},
                "default": ["COMPLIANCE", "GOVERNANCE"],
            },
            "minDays": {"type": "integer", "minimum": 0, "default": 0},
        },
        _object_lock,
    ),
    StackRule(
        "s3-lifecycle-noncurrent-cleanup",
        "Versioned offsite buckets expire noncurrent versions (advisory: a cost judgement).",
        "advisory",
        {},
        _noncurrent_cleanup,
    ),
)
