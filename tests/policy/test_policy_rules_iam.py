"""Least-privilege credentials, on real component output."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from policy_cases import assert_fires, assert_passes, one, render

from policy.rules import Resource
from policy.rules import props as p


def _edit_policy(resources: list[Any], name: str, edit: Callable[[dict[str, Any]], None]) -> None:
    policy = one(resources, p.IAM_ROLE_POLICY, name).props
    doc = json.loads(policy["policy"])
    edit(doc)
    policy["policy"] = json.dumps(doc)


def test_no_delete_passes(stack: str) -> None:
    assert_passes(stack, "iam-no-delete")


def test_writer_with_delete_fires() -> None:
    resources = render("production")

    def delete(doc: dict[str, Any]) -> None:
        doc["Statement"][1]["Action"].append("s3:DeleteObject")

    _edit_policy(resources, "writer", delete)
    assert_fires("production", resources, "iam-no-delete", "allows 's3:DeleteObject'")


def test_writer_with_s3_wildcard_fires() -> None:
    resources = render("staging")

    def wildcard(doc: dict[str, Any]) -> None:
        doc["Statement"][1]["Action"] = "s3:*"

    _edit_policy(resources, "writer", wildcard)
    hit = assert_fires("staging", resources, "iam-no-delete", "allows 's3:*'", "s3:DeleteObject")
    assert "s3:PutObject" in hit.message  # the fix names what the writer does need


def test_writer_with_not_action_fires() -> None:
    resources = render("staging")

    def not_action(doc: dict[str, Any]) -> None:
        statement = doc["Statement"][1]
        statement["NotAction"] = ["iam:*"]
        del statement["Action"]

    _edit_policy(resources, "writer", not_action)
    assert_fires("staging", resources, "iam-no-delete", "NotAction")


def test_reader_read_only_passes(stack: str) -> None:
    assert_passes(stack, "iam-reader-read-only")


def test_reader_with_put_fires() -> None:
    resources = render("production")

    def put(doc: dict[str, Any]) -> None:
        doc["Statement"][1]["Action"].append("s3:PutObject")

    _edit_policy(resources, "reader", put)
    assert_fires("production", resources, "iam-reader-read-only", "grants a reader s3:PutObject")


def test_cross_stack_grant_with_write_fires_even_outside_the_reader() -> None:
    """Staging may read production's backups (stack config) but never write them."""
    resources = render("staging")
    grants = json.loads(one(resources, p.IAM_ROLE_POLICY, "reader").props["policy"])
    foreign = [s for s in grants["Statement"] if "production" in json.dumps(s.get("Resource"))]
    assert foreign, "staging's shipped config grants read access to production's bucket"

    def write_to_production(doc: dict[str, Any]) -> None:
        doc["Statement"].append(
            {"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": foreign[-1]["Resource"]}
        )

    _edit_policy(resources, "writer", write_to_production)
    assert_fires(
        "staging", resources, "iam-reader-read-only", "another stack's bucket", "s3:PutObject"
    )


def test_broad_managed_policy_on_the_writer_fires() -> None:
    resources = render("production")
    role = one(resources, p.IAM_ROLE, "writer")
    role.props["managedPolicyArns"] = ["arn:aws:iam::aws:policy/AmazonS3FullAccess"]  # type: ignore[index]
    assert_fires("production", resources, "iam-no-delete", "AmazonS3FullAccess")


def test_a_bucket_policy_that_lets_a_principal_delete_fires() -> None:
    resources = render("production")
    policy = one(resources, p.BUCKET_POLICY).props
    doc = json.loads(policy["policy"])
    doc["Statement"].append(
        {
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:role/writer"},
            "Action": ["s3:DeleteObjectVersion", "s3:PutLifecycleConfiguration"],
            "Resource": "arn:aws:s3:::vocab-app-production-postgres-backups/*",
        }
    )
    policy["policy"] = json.dumps(doc)
    assert_fires("production", resources, "iam-no-delete", "allows 's3:DeleteObjectVersion'")


def test_a_writer_that_can_grant_itself_more_fires() -> None:
    resources = render("staging")

    def escalate(doc: dict[str, Any]) -> None:
        doc["Statement"].append({"Effect": "Allow", "Action": "iam:Put*", "Resource": "*"})

    _edit_policy(resources, "writer", escalate)
    assert_fires("staging", resources, "iam-no-delete", "allows 'iam:Put*'", "iam:PutRolePolicy")


def test_a_group_policy_is_held_to_the_same_rule() -> None:
    resources = render("staging")
    resources.append(
        Resource(
            p.IAM_GROUP_POLICY,
            "operators",
            {
                "policy": json.dumps(
                    {"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
                )
            },
        )
    )
    assert_fires("staging", resources, "iam-no-delete", "allows 's3:*'")


def test_a_writer_allowed_to_write_every_bucket_fires() -> None:
    resources = render("production")

    def everywhere(doc: dict[str, Any]) -> None:
        doc["Statement"][1]["Resource"] = "*"

    _edit_policy(resources, "writer", everywhere)
    assert_fires("production", resources, "iam-reader-read-only", "every bucket matching '*'")


def test_a_broad_managed_policy_of_another_partition_fires() -> None:
    resources = render("production")
    resources.append(
        Resource(
            "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
            "writer-admin",
            {"role": "writer", "policyArn": "arn:aws-cn:iam::aws:policy/AdministratorAccess"},
        )
    )
    assert_fires("production", resources, "iam-no-delete", "AdministratorAccess")
