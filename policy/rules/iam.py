"""Least privilege for the credentials the pods hold: the writer can never destroy a backup, and
access to another stack's backups is read-only."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

from .model import Config, Resource, ResourceRule, StackRule, Violation, explain
from .props import (
    BUCKET,
    BUCKET_POLICY,
    IAM_POLICY_TYPES,
    as_strings,
    bucket_name,
    dig,
    iam_documents,
    of_type,
    statements,
)

# Actions that destroy backups, or shorten how long they are kept, or destroy the key that
# decrypts them. A granted pattern is refused when it matches any of them (`s3:*`, `s3:Delete*`,
# `s3:Put*`, `*` all do).
DESTRUCTIVE_ACTIONS = [
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:DeleteBucket",
    "s3:DeleteBucketPolicy",
    "s3:PutLifecycleConfiguration",
    "s3:PutBucketVersioning",
    "s3:PutBucketPolicy",
    "s3:PutBucketObjectLockConfiguration",
    "s3:BypassGovernanceRetention",
    "kms:ScheduleKeyDeletion",
    "kms:DisableKey",
    "kms:PutKeyPolicy",
    # ... or let the credential grant itself (or a role it can become) any of the above.
    "iam:PutRolePolicy",
    "iam:AttachRolePolicy",
    "iam:PutUserPolicy",
    "iam:AttachUserPolicy",
    "iam:PutGroupPolicy",
    "iam:AttachGroupPolicy",
    "iam:CreatePolicyVersion",
    "iam:SetDefaultPolicyVersion",
    "iam:UpdateAssumeRolePolicy",
    "iam:CreateAccessKey",
    "iam:PassRole",
    "sts:AssumeRole",
]
BROAD_MANAGED_POLICIES = [
    "arn:aws:iam::aws:policy/AdministratorAccess",
    "arn:aws:iam::aws:policy/PowerUserAccess",
    "arn:aws:iam::aws:policy/AmazonS3FullAccess",
]
ATTACHMENTS = frozenset(
    {
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        "aws:iam/userPolicyAttachment:UserPolicyAttachment",
        "aws:iam/groupPolicyAttachment:GroupPolicyAttachment",
        "aws:iam/policyAttachment:PolicyAttachment",
    }
)
READ_ONLY_ACTIONS = [
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:GetObjectAttributes",
    "s3:GetObjectTagging",
    "s3:GetBucketLocation",
    "s3:ListBucket",
    "s3:ListBucketVersions",
    "kms:Decrypt",
    "kms:DescribeKey",
]


def _matches(granted: str, action: str) -> bool:
    # IAM action names are case-insensitive.
    return fnmatchcase(action.lower(), granted.lower())


def _allows(statement: Mapping[str, Any]) -> bool:
    return dig(statement, "Effect") == "Allow"


def _no_delete(resource: Resource, config: Config) -> Iterator[str]:
    forbidden = [str(a) for a in config["forbiddenActions"]]
    broad = {str(a) for a in config["forbiddenManagedPolicies"]}
    attached = as_strings(dig(resource.props, "managedPolicyArns")) + as_strings(
        dig(resource.props, "policyArn")
    )
    for arn in attached:
        # The same managed policy in every partition (arn:aws, arn:aws-cn, arn:aws-us-gov).
        if re.sub(r"^arn:aws[a-z-]*:", "arn:aws:", arn) in broad:
            yield explain(
                f"{resource.label} attaches the managed policy {arn!r}",
                "it includes deleting objects and changing bucket settings, so a stolen pod "
                "credential can erase the backups",
                "attach only the stack's own least-privilege policy",
            )
    for label, doc in iam_documents(resource):
        for statement in filter(_allows, statements(doc)):
            if dig(statement, "NotAction") is not None:
                yield explain(
                    f"{label} allows NotAction {as_strings(dig(statement, 'NotAction'))}, "
                    "which grants every other action, deletes included",
                    "credentials in a pod that can delete or shorten retention let one bad "
                    "script or one stolen token erase the backups",
                    "list the actions the job needs under Action instead",
                )
            for granted in as_strings(dig(statement, "Action")):
                hits = [a for a in forbidden if _matches(granted, a)]
                if hits:
                    yield explain(
                        f"{label} allows {granted!r}, which includes {', '.join(hits[:3])}"
                        + (" and more" if len(hits) > 3 else ""),
                        "credentials in a pod (or anyone the bucket policy lets in) that can "
                        "delete, shorten retention or grant themselves more let one bad script "
                        "or one stolen token erase the backups",
                        "grant only the actions needed by name (the writer: s3:PutObject, "
                        "s3:ListBucket, kms:GenerateDataKey, kms:Decrypt); expiry is the "
                        "lifecycle's job",
                    )


def _own_bucket_names(resources: Sequence[Resource]) -> set[str]:
    return {bucket_name(b) for b in of_type(resources, BUCKET)}


def _bucket_of(arn: str) -> str | None:
    """The bucket (or bucket pattern: `*` for every bucket) an S3 resource ARN names."""
    if arn == "*":
        return "*"
    partition, _, name = arn.partition(":s3:::")  # arn:aws, arn:aws-cn, arn:aws-us-gov
    if not name or not partition.startswith("arn:aws"):
        return None
    return name.split("/", 1)[0] or None


def _is_reader(resource: Resource, markers: Sequence[str]) -> bool:
    names = [resource.name, str(dig(resource.props, "name", default=""))]
    return any(m.lower() in n.lower() for m in markers for n in names)


def _reader_read_only(resources: Sequence[Resource], config: Config) -> Iterator[Violation]:
    """Readers (by name) and every grant on a bucket this stack does not own are read-only."""
    allowed = [str(a) for a in config["readOnlyActions"]]
    markers = [str(m) for m in config["readerNameMarkers"]]
    own = _own_bucket_names(resources)
    for resource in of_type(resources, *IAM_POLICY_TYPES):
        reader = _is_reader(resource, markers)
        for label, doc in iam_documents(resource):
            for statement in filter(_allows, statements(doc)):
                targets = {_bucket_of(t) for t in as_strings(dig(statement, "Resource"))}
                foreign = sorted(t for t in targets if t and t not in own)
                if not (reader or foreign):
                    continue
                actions = as_strings(dig(statement, "Action")) or ["NotAction (everything else)"]
                extra = [a for a in actions if not _read_only(a, allowed)]
                if extra:
                    if not foreign:
                        whose = "a reader"
                    elif "*" in foreign[0]:
                        whose = f"every bucket matching {foreign[0]!r} (other stacks' included)"
                    else:
                        whose = f"another stack's bucket {foreign[0]!r}"
                    yield Violation(
                        explain(
                            f"{resource.label}: {label} grants {whose} {', '.join(extra)}",
                            "restoring another stack's backup, or any restore, only needs to "
                            "read; write or delete access there lets this stack damage backups "
                            "it does not own",
                            f"grant only read actions ({', '.join(allowed[:4])}, ...)",
                        ),
                        resource,
                    )


def _read_only(granted: str, allowed: Sequence[str]) -> bool:
    """A granted action (maybe a wildcard) is read-only when everything it can match is allowed:
    a literal in the list, or a wildcard no wider than one of the list's own wildcards."""
    literal = not any(c in granted for c in "*?")
    return any(
        granted.lower() == ok.lower() or (literal and _matches(ok, granted)) for ok in allowed
    )


RULES = (
    ResourceRule(
        "iam-no-delete",
        "Credentials declared by the stack can never delete backups, shorten their retention or "
        "destroy their key.",
        "mandatory",
        {
            "forbiddenActions": {
                "type": "array",
                "items": {"type": "string"},
                "default": DESTRUCTIVE_ACTIONS,
            },
            "forbiddenManagedPolicies": {
                "type": "array",
                "items": {"type": "string"},
                "default": BROAD_MANAGED_POLICIES,
            },
        },
        types=IAM_POLICY_TYPES | ATTACHMENTS | {BUCKET_POLICY},
        check=_no_delete,
    ),
    StackRule(
        "iam-reader-read-only",
        "Readers, and every grant on another stack's bucket, are read-only.",
        "mandatory",
        {
            "readOnlyActions": {
                "type": "array",
                "items": {"type": "string"},
                "default": READ_ONLY_ACTIONS,
            },
            "readerNameMarkers": {
                "type": "array",
                "items": {"type": "string"},
                "default": ["reader", "restore"],
            },
        },
        _reader_read_only,
    ),
)
