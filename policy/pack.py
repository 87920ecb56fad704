"""The rules as `pulumi_policy` policies: the online path (`pulumi preview --policy-pack policy`).

Kept apart from `__main__.py` because constructing a `PolicyPack` starts a gRPC server and blocks;
tests build the policies here and call their validators with hand-made `ResourceValidationArgs` and
`StackValidationArgs`.
"""

from __future__ import annotations

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from .rules import RULES, NotApplicable, Resource, ResourceRule, Rule, StackRule

PACK_NAME = "pgbackup"
LEVELS = {"mandatory": EnforcementLevel.MANDATORY, "advisory": EnforcementLevel.ADVISORY}


def _schema(rule: Rule) -> PolicyConfigSchema | None:
    if not rule.config_schema:
        return None
    return PolicyConfigSchema(properties={k: dict(v) for k, v in rule.config_schema.items()})


def _resource_policy(rule: ResourceRule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        resource = Resource(args.resource_type, args.name, args.props, args.urn)
        if not rule.applies_to(resource):
            return
        for message in rule.check(resource, rule.settings(args.get_config())):
            report(message, None)

    return ResourceValidationPolicy(
        name=rule.name,
        description=rule.description,
        validate=validate,
        enforcement_level=LEVELS[rule.enforcement],
        config_schema=_schema(rule),
    )


def _stack_policy(rule: StackRule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        resources = [
            Resource(
                r.resource_type,
                r.name,
                r.props,
                r.urn,
                {k: [d.urn for d in deps] for k, deps in r.property_dependencies.items()},
            )
            for r in args.resources
        ]
        try:
            violations = list(rule.check(resources, rule.settings(args.get_config())))
        except NotApplicable as reason:
            args.not_applicable(reason.reason)
            return
        for violation in violations:
            report(violation.message, violation.resource.urn if violation.resource else None)

    return StackValidationPolicy(
        name=rule.name,
        description=rule.description,
        validate=validate,
        enforcement_level=LEVELS[rule.enforcement],
        config_schema=_schema(rule),
    )


def policies() -> list[Policy]:
    built: list[Policy] = []
    for rule in RULES:
        if isinstance(rule, ResourceRule):
            built.append(_resource_policy(rule))
        elif isinstance(rule, StackRule):
            built.append(_stack_policy(rule))
    return built
