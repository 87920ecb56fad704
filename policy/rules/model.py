"""The shapes every rule speaks: a declared resource, a violation, and the two kinds of rule.

A rule never sees Pulumi's policy classes. `policy.pack` adapts the rules to `pulumi_policy`, and
`policy.evaluate` runs them offline, so the online and offline paths share one implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Enforcement = Literal["mandatory", "advisory"]
Config = Mapping[str, Any]


@dataclass(frozen=True)
class Resource:
    """A resource as the engine sees it: type token, logical name, properties (camelCase)."""

    type: str
    name: str
    props: Mapping[str, Any]
    urn: str = ""
    # Property name -> URNs or names of the resources it was computed from. Online these are the
    # engine's property dependencies: they link a BucketVersioning to its Bucket even while the
    # bucket's id is still unknown at preview.
    dependencies: Mapping[str, Sequence[str]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How the offline table and messages name the resource."""
        return f"{self.type.rsplit(':', 1)[-1]} {self.name}"


@dataclass(frozen=True)
class Violation:
    message: str
    resource: Resource | None = None


class NotApplicable(Exception):
    """Raised by a check when the rule does not apply (e.g. Object Lock not required here)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def explain(what: str, why: str, fix: str) -> str:
    """Every message says what is wrong, why it matters and how to fix it, in that order."""
    return f"{what}. Why it matters: {why}. Fix: {fix}."


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    enforcement: Enforcement
    # JSON-schema properties of the tunables, each with a `default` (the pack's config schema).
    config_schema: Mapping[str, Mapping[str, Any]]

    def settings(self, given: Config | None) -> dict[str, Any]:
        """Schema defaults overlaid with the values of a policy config file."""
        values = {
            key: spec["default"] for key, spec in self.config_schema.items() if "default" in spec
        }
        values.update({k: v for k, v in (given or {}).items() if k != "enforcementLevel"})
        return values


@dataclass(frozen=True)
class ResourceRule(Rule):
    """Judges one resource at a time; only resources whose type is in `types`."""

    types: frozenset[str]
    check: Callable[[Resource, Config], Iterable[str]]

    def applies_to(self, resource: Resource) -> bool:
        return resource.type in self.types


@dataclass(frozen=True)
class StackRule(Rule):
    """Judges the whole stack: rules that relate resources (a bucket and its versioning)."""

    check: Callable[[Sequence[Resource], Config], Iterable[Violation]]
