"""The offsite bucket rules, on real component output: shipped stacks pass, each weakened property
fires its rule with a message that says what, why and how to fix."""

from __future__ import annotations

import json
from typing import Any

from policy_cases import assert_fires, assert_passes, one, render, weakened

from policy.rules import props as p


def _props(resources: list[Any], type_token: str) -> dict[str, Any]:
    return one(resources, type_token).props  # type: ignore[return-value]


def test_versioning_passes(stack: str) -> None:
    assert_passes(stack, "s3-bucket-versioning")


def test_versioning_suspended_fires() -> None:
    resources = render("production")
    _props(resources, p.BUCKET_VERSIONING)["versioningConfiguration"]["status"] = "Suspended"
    assert_fires(
        "production", resources, "s3-bucket-versioning", "no versioning enabled", "'Suspended'"
    )


def test_versioning_missing_fires() -> None:
    resources = [r for r in render("staging") if r.type != p.BUCKET_VERSIONING]
    assert_fires("staging", resources, "s3-bucket-versioning", "BucketVersioning")


def test_sse_kms_passes(stack: str) -> None:
    assert_passes(stack, "s3-bucket-sse-kms")


def test_sse_s3_instead_of_kms_fires() -> None:
    resources = render("production")
    rule = _props(resources, p.BUCKET_SSE)["rules"][0]
    rule["applyServerSideEncryptionByDefault"] = {"sseAlgorithm": "AES256"}
    assert_fires("production", resources, "s3-bucket-sse-kms", "not encrypted with SSE-KMS")


def test_sse_aws_managed_key_and_no_bucket_key_fire() -> None:
    resources = render("production")
    rule = _props(resources, p.BUCKET_SSE)["rules"][0]
    del rule["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"]
    rule["bucketKeyEnabled"] = False
    assert_fires("production", resources, "s3-bucket-sse-kms", "AWS-managed key")
    messages = [o.message for o in _problems("production", resources, "s3-bucket-sse-kms")]
    assert any("Bucket Key" in m for m in messages)


def test_public_access_passes(stack: str) -> None:
    assert_passes(stack, "s3-public-access-blocked")


def test_public_access_partly_open_fires() -> None:
    resources = render("production")
    _props(resources, p.BUCKET_PUBLIC_ACCESS)["restrictPublicBuckets"] = False
    assert_fires(
        "production", resources, "s3-public-access-blocked", "restrictPublicBuckets not True"
    )


def test_tls_only_passes(stack: str) -> None:
    assert_passes(stack, "s3-tls-only")


def test_tls_condition_dropped_fires() -> None:
    resources = render("production")
    policy = _props(resources, p.BUCKET_POLICY)
    doc = json.loads(policy["policy"])
    del doc["Statement"][0]["Condition"]
    doc["Statement"][0]["Effect"] = "Allow"
    policy["policy"] = json.dumps(doc)
    assert_fires("production", resources, "s3-tls-only", "without TLS", "aws:SecureTransport")


def test_the_aws_managed_key_named_by_its_alias_fires() -> None:
    resources = render("production")
    rule = _props(resources, p.BUCKET_SSE)["rules"][0]
    rule["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"] = "alias/aws/s3"
    assert_fires("production", resources, "s3-bucket-sse-kms", "AWS-managed key (alias/aws/s3)")


def test_a_tls_deny_on_another_buckets_arns_fires() -> None:
    resources = render("production")
    policy = _props(resources, p.BUCKET_POLICY)
    doc = json.loads(policy["policy"])
    doc["Statement"][0]["Resource"] = ["arn:aws:s3:::elsewhere", "arn:aws:s3:::elsewhere/*"]
    policy["policy"] = json.dumps(doc)
    assert_fires("production", resources, "s3-tls-only", "without TLS")


def test_abort_multipart_passes(stack: str) -> None:
    assert_passes(stack, "s3-lifecycle-abort-multipart")


def test_abort_multipart_removed_fires() -> None:
    resources = render("production")
    for rule in _props(resources, p.BUCKET_LIFECYCLE)["rules"]:
        rule.pop("abortIncompleteMultipartUpload", None)
    assert_fires(
        "production", resources, "s3-lifecycle-abort-multipart", "incomplete multipart uploads"
    )


def test_slow_multipart_abort_in_config_fires() -> None:
    def slow(offsite: dict[str, Any]) -> None:
        offsite["abortMultipartDays"] = 30

    resources = weakened("production", "offsite", slow)
    assert_fires("production", resources, "s3-lifecycle-abort-multipart", "within 7 days")


def test_noncurrent_cleanup_is_advisory() -> None:
    assert_passes("production", "s3-lifecycle-noncurrent-cleanup")
    resources = render("production")
    for rule in _props(resources, p.BUCKET_LIFECYCLE)["rules"]:
        rule.pop("noncurrentVersionExpiration", None)
    assert_fires(
        "production",
        resources,
        "s3-lifecycle-noncurrent-cleanup",
        "noncurrent versions",
        result="warn",
    )


def test_object_lock_passes_in_production_and_is_not_required_in_staging() -> None:
    assert_passes("production", "s3-object-lock")
    assert_passes("staging", "s3-object-lock")


def test_object_lock_removed_from_production_config_fires() -> None:
    def unlocked(offsite: dict[str, Any]) -> None:
        del offsite["objectLock"]

    resources = weakened("production", "offsite", unlocked)
    hit = assert_fires("production", resources, "s3-object-lock", "without Object Lock")
    assert "object_lock_enabled True" in hit.message


def test_object_lock_governance_mode_fires_in_production() -> None:
    def governance(offsite: dict[str, Any]) -> None:
        offsite["objectLock"]["mode"] = "GOVERNANCE"

    resources = weakened("production", "offsite", governance)
    assert_fires("production", resources, "s3-object-lock", "mode 'GOVERNANCE'")


def test_object_lock_shorter_than_retention_fires() -> None:
    resources = render("production")
    _props(resources, p.BUCKET_OBJECT_LOCK)["rule"]["defaultRetention"]["days"] = 10
    assert_fires("production", resources, "s3-object-lock", "for 10 days, less than 90")


def _problems(stack: str, resources: list[Any], rule: str) -> list[Any]:
    from policy_cases import problems

    return problems(stack, resources, rule)


def test_policy_document_unknown_at_preview_cannot_be_judged_yet() -> None:
    """At the first preview the TLS policy is built from the bucket's ARN, which is not known."""
    from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

    from policy.evaluate import evaluate

    resources = render("production")
    _props(resources, p.BUCKET_POLICY)["policy"] = UNKNOWN_STRING_VALUE
    [outcome] = [o for o in evaluate(resources) if o.rule == "s3-tls-only"]
    assert outcome.result == "unknown"
    assert outcome.message.startswith("cannot judge yet: string value at .policy")
