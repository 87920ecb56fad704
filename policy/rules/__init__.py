"""Every rule of the pack, as plain functions over declared resources (see `model`)."""

from __future__ import annotations

from . import advisory, cronjobs, iam, pods, rbac, retention, s3
from .model import NotApplicable, Resource, ResourceRule, Rule, StackRule, Violation

RULES: tuple[Rule, ...] = (
    *s3.RULES,
    *iam.RULES,
    *cronjobs.RULES,
    *pods.RULES,
    *rbac.RULES,
    *retention.RULES,
    *advisory.RULES,
)

__all__ = ["RULES", "NotApplicable", "Resource", "ResourceRule", "Rule", "StackRule", "Violation"]
