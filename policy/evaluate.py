"""Offline evaluation: the pack's rule functions over the resources a stack declares.

The same per-policy config file as `pulumi preview --policy-pack-config` (tunables and
`enforcementLevel` per policy, or `"all"`) decides floors and levels, and values unknown before
deployment give "unknown" (cannot judge yet) exactly as they do under the engine.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

from .rules import RULES, NotApplicable, Resource, ResourceRule, Rule, StackRule, Violation
from .rules.model import Enforcement

Result = Literal["pass", "fail", "warn", "unknown", "skip"]
LEVELS = ("advisory", "mandatory", "disabled")
CONFIG_DIR = Path(__file__).resolve().parent / "config"


@dataclass(frozen=True)
class Outcome:
    rule: str
    resource: str
    result: Result
    message: str


class PolicyConfigError(ValueError):
    pass


def config_path(stack: str) -> Path:
    return CONFIG_DIR / f"{stack}.json"


def load_policy_config(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except OSError as error:
        raise PolicyConfigError(f"cannot read policy config {path}: {error.strerror}") from error
    except ValueError as error:
        raise PolicyConfigError(f"policy config {path} is not valid JSON: {error}") from error
    if not isinstance(data, dict):
        raise PolicyConfigError(f"policy config {path} must be a JSON object of policy names")
    rules = {rule.name: rule for rule in RULES}
    unknown = sorted(set(data) - set(rules) - {"all"})
    if unknown:
        raise PolicyConfigError(f"policy config {path} names unknown policies: {unknown}")
    for name, entry in data.items():
        if isinstance(entry, dict) and name in rules:
            _check_tunables(path, rules[name], entry)
    return data


JSON_TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "string": (str,),
    "array": (list,),
    "object": (dict,),
}


def _check_tunables(path: Path, rule: Rule, entry: Mapping[str, Any]) -> None:
    """What the Pulumi CLI checks against the config schema, so a typo is not a silent default."""
    for key, value in entry.items():
        if key == "enforcementLevel":
            continue
        spec = rule.config_schema.get(key)
        if spec is None:
            known = ", ".join(rule.config_schema) or "none"
            raise PolicyConfigError(f"{path}: {rule.name} has no setting {key!r} (known: {known})")
        wanted = JSON_TYPES.get(str(spec.get("type")), (object,))
        is_bool = isinstance(value, bool)
        if not isinstance(value, wanted) or (is_bool and bool not in wanted):
            raise PolicyConfigError(f"{path}: {rule.name}.{key} must be a {spec.get('type')}")


def level_of(rule: Rule, policy_config: Mapping[str, Any]) -> str:
    """The enforcement level: the policy's own entry, else `all`, else the rule's default."""
    for key in (rule.name, "all"):
        entry = policy_config.get(key)
        level = entry.get("enforcementLevel") if isinstance(entry, Mapping) else entry
        if level is not None:
            if level not in LEVELS:
                raise PolicyConfigError(f"{key}: enforcementLevel {level!r} is not one of {LEVELS}")
            return str(level)
    return rule.enforcement


def settings_of(rule: Rule, policy_config: Mapping[str, Any]) -> dict[str, Any]:
    entry = policy_config.get(rule.name)
    return rule.settings(entry if isinstance(entry, Mapping) else None)


def guarded(resource: Resource) -> Resource:
    """The resource with the engine's unknown-checking proxy over its properties."""
    if not isinstance(resource.props, dict):
        return resource  # already the engine's proxy
    props = unknown_checking_proxy(resource.props)
    return Resource(resource.type, resource.name, props, resource.urn, resource.dependencies)


def _run_rule(
    rule: Rule, resources: Sequence[Resource], config: Mapping[str, Any]
) -> list[Outcome]:
    failed: Result = "fail" if rule.enforcement == "mandatory" else "warn"
    outcomes: list[Outcome] = []

    def judge(label: str, found: Iterable[Violation]) -> None:
        try:
            violations = list(found)
        except UnknownValueError as error:
            outcomes.append(
                Outcome(rule.name, label, "unknown", f"cannot judge yet: {error.message}")
            )
            return
        except NotApplicable as reason:
            outcomes.append(Outcome(rule.name, label, "skip", reason.reason))
            return
        for v in violations:
            outcomes.append(
                Outcome(rule.name, v.resource.label if v.resource else label, failed, v.message)
            )
        if not violations:
            outcomes.append(Outcome(rule.name, label, "pass", ""))

    if isinstance(rule, ResourceRule):
        applicable = [r for r in resources if rule.applies_to(r)]
        for resource in applicable:
            judge(
                resource.label,
                (Violation(m, resource) for m in rule.check(resource, config)),
            )
        if not applicable:
            outcomes.append(Outcome(rule.name, "(stack)", "skip", "no resource of this kind"))
    elif isinstance(rule, StackRule):
        judge("(stack)", rule.check(resources, config))
    return outcomes


def evaluate(
    resources: Sequence[Resource],
    policy_config: Mapping[str, Any] | None = None,
    rules: Sequence[Rule] = RULES,
) -> list[Outcome]:
    """Every rule over the declared resources; disabled rules are left out."""
    policy_config = policy_config or {}
    guarded_resources = [guarded(r) for r in resources]
    outcomes: list[Outcome] = []
    for rule in rules:
        level = level_of(rule, policy_config)
        if level == "disabled":
            continue
        effective = _with_level(rule, level)
        outcomes += _run_rule(effective, guarded_resources, settings_of(rule, policy_config))
    return outcomes


def _with_level(rule: Rule, level: str) -> Rule:
    enforcement: Enforcement = "mandatory" if level == "mandatory" else "advisory"
    return replace(rule, enforcement=enforcement)


def mandatory_failures(outcomes: Iterable[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if o.result == "fail"]
