"""IAM and bucket policy documents, built as plain data (no provider invoke: they render offline
exactly as they deploy, and the policy pack reads the same JSON)."""

from __future__ import annotations

import json
from typing import Any

from infra import names

Statement = dict[str, Any]


def document(*statements: Statement) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}, indent=2)


def _prefix(prefix: str) -> str:
    return prefix.strip("/")


def tls_only_bucket_policy(bucket_arn: str) -> str:
    """Deny every request that does not use TLS (aws:SecureTransport false), for all principals."""
    return document(
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [bucket_arn, f"{bucket_arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    )


def _list_statement(bucket_arn: str, prefix: str) -> Statement:
    p = _prefix(prefix)
    return {
        "Sid": "ListBackupPrefix",
        "Effect": "Allow",
        "Action": ["s3:ListBucket"],
        "Resource": [bucket_arn],
        "Condition": {"StringLike": {"s3:prefix": [p, f"{p}/*"]}},
    }


def writer_policy(bucket_arn: str, prefix: str, kms_key_arn: str) -> str:
    """Put and list, never delete: a stolen writer key cannot destroy the offsite copies. Sizes are
    verified with ListObjectsV2, so no GetObject either. Multipart upload with SSE-KMS needs
    GenerateDataKey and Decrypt."""
    return document(
        _list_statement(bucket_arn, prefix),
        {
            "Sid": "PutBackupObjects",
            "Effect": "Allow",
            "Action": ["s3:PutObject"],
            "Resource": [f"{bucket_arn}/{_prefix(prefix)}/*"],
        },
        {
            "Sid": "EncryptWithBackupKey",
            "Effect": "Allow",
            "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
            "Resource": [kms_key_arn],
        },
    )


def reader_policy(sources: list[tuple[str, str, str | None]]) -> str:
    """Get and list on each (bucket ARN, prefix, KMS key ARN or None) — the stack's own bucket and
    any other stack's bucket granted read-only in config."""
    statements: list[Statement] = []
    for i, (bucket_arn, prefix, key_arn) in enumerate(sources):
        listing = _list_statement(bucket_arn, prefix)
        listing["Sid"] = f"ListBackupPrefix{i}"
        statements.append(listing)
        statements.append(
            {
                "Sid": f"GetBackupObjects{i}",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": [f"{bucket_arn}/{_prefix(prefix)}/*"],
            }
        )
        decrypt: Statement = {
            "Sid": f"DecryptWithBackupKey{i}",
            "Effect": "Allow",
            "Action": ["kms:Decrypt"],
            "Resource": [key_arn],
        }
        if not key_arn:
            # Another stack's key, ARN not given: allow only the key carrying that bucket's alias.
            bucket = bucket_arn.rsplit(":", 1)[-1]
            decrypt["Resource"] = ["arn:aws:kms:*:*:key/*"]
            decrypt["Condition"] = {
                "ForAnyValue:StringEquals": {"kms:ResourceAliases": [names.kms_alias(bucket)]}
            }
        statements.append(decrypt)
    return document(*statements)


def irsa_trust_policy(provider_arn: str, issuer: str, namespace: str, service_account: str) -> str:
    """Only this ServiceAccount, through the cluster's OIDC provider, may assume the role."""
    return document(
        {
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {
                    f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                    f"{issuer}:aud": "sts.amazonaws.com",
                }
            },
        }
    )


def bucket_arn(bucket_name: str) -> str:
    return f"arn:aws:s3:::{bucket_name}"
