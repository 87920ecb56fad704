"""The online path: the pack's policies, called as the Pulumi engine calls them.

`PolicyPack(...)` serves gRPC and blocks, so the policies come from `policy.pack.policies()` and are
driven two ways: directly, with `pulumi_policy`'s own `ResourceValidationArgs` and
`StackValidationArgs` built by hand (camelCase props from the real render); and through the SDK's
analyzer servicer with protobuf requests, which adds its deserialising, its unknown-value proxy
and its handling of "cannot judge yet" at preview.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.protobuf import json_format, struct_pb2
from policy_cases import backup_cronjob, render, weakened
from pulumi.runtime import proto
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.policy import _PolicyAnalyzerServicer
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError

from policy.evaluate import config_path, evaluate, load_policy_config
from policy.pack import PACK_NAME, policies
from policy.rules import RULES, Resource
from policy.rules import props as p


def _options() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def _urn(stack: str, resource: Resource) -> str:
    return f"urn:pulumi:{stack}::pgbackup::{resource.type}::{resource.name}"


def _policy(name: str) -> Any:
    return next(policy for policy in policies() if policy.name == name)


def _resource_args(stack: str, resource: Resource, config: Any = None) -> ResourceValidationArgs:
    return ResourceValidationArgs(
        resource.type,
        resource.props,
        _urn(stack, resource),
        resource.name,
        _options(),
        None,
        config,
    )


def _stack_args(stack: str, resources: list[Resource], config: Any = None) -> StackValidationArgs:
    built = [
        PolicyResource(r.type, r.props, _urn(stack, r), r.name, _options(), None, None, [], {})
        for r in resources
    ]
    return StackValidationArgs(built, config)


def _run(policy: Any, args: Any) -> list[str]:
    reports: list[str] = []
    policy.validate(args, lambda message, urn=None: reports.append(message))
    return reports


def test_every_rule_is_a_policy_with_its_level_and_schema() -> None:
    built = {policy.name: policy for policy in policies()}
    assert set(built) == {rule.name for rule in RULES}
    for rule in RULES:
        policy = built[rule.name]
        assert policy.description == rule.description
        expected = "mandatory" if rule.enforcement == "mandatory" else "advisory"
        assert policy.enforcement_level == EnforcementLevel(expected)
        if rule.config_schema:
            assert policy.config_schema.properties == rule.config_schema


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_shipped_stacks_pass_every_mandatory_policy_online(stack: str) -> None:
    resources = render(stack)
    config = load_policy_config(config_path(stack))
    for policy in policies():
        if policy.enforcement_level != EnforcementLevel.MANDATORY:
            continue
        settings = config.get(policy.name)
        if isinstance(policy, ResourceValidationPolicy):
            for resource in resources:
                assert _run(policy, _resource_args(stack, resource, settings)) == []
        else:
            assert isinstance(policy, StackValidationPolicy)
            try:
                assert _run(policy, _stack_args(stack, resources, settings)) == []
            except Exception as error:  # not_applicable() raises the SDK's private error
                assert type(error).__name__ == "_NotApplicableError", error


def test_resource_policy_reports_the_same_message_as_offline() -> None:
    resources = render("production")
    backup_cronjob(resources)["spec"]["concurrencyPolicy"] = "Replace"
    cronjob = next(
        r for r in resources if r.props.get("spec", {}).get("concurrencyPolicy") == "Replace"
    )
    online = _run(_policy("cronjob-concurrency-forbid"), _resource_args("production", cronjob))
    offline = [o.message for o in evaluate(resources) if o.result == "fail"]
    assert online == offline
    assert "concurrencyPolicy 'Replace'" in online[0]


def test_stack_policy_reports_the_same_message_as_offline() -> None:
    resources = [r for r in render("staging") if r.type != p.BUCKET_PUBLIC_ACCESS]
    online = _run(_policy("s3-public-access-blocked"), _stack_args("staging", resources))
    offline = [o.message for o in evaluate(resources) if o.result == "fail"]
    assert online == offline
    assert "has no public access block" in online[0]


def test_policy_config_sets_the_floor_online() -> None:
    """The production floor comes from the same file `--policy-pack-config` is given."""

    def small(databases: list[dict[str, Any]]) -> None:
        databases[0]["storageSize"] = "20Gi"

    pvc = next(r for r in weakened("staging", "databases", small) if r.type == p.PVC)
    policy = _policy("pvc-min-size")
    for stack, expected in (("staging", []), ("production", ["less than 30Gi"])):
        floor = load_policy_config(config_path(stack))["pvc-min-size"]
        reports = _run(policy, _resource_args(stack, pvc, floor))
        assert [e for e in expected if any(e in r for r in reports)] == expected
        assert len(reports) == len(expected)


def test_object_lock_required_only_by_config_online() -> None:
    resources = render("staging")  # staging has no Object Lock
    policy = _policy("s3-object-lock")
    with pytest.raises(Exception) as raised:  # noqa: B017 (its type is private; checked below)
        _run(policy, _stack_args("staging", resources, {"required": False}))
    assert type(raised.value).__name__ == "_NotApplicableError"
    reports = _run(policy, _stack_args("staging", resources, {"required": True}))
    assert any("without Object Lock" in r for r in reports)


# --- through the SDK's analyzer servicer (what the gRPC server calls) ------------------------


def _servicer(stack: str) -> _PolicyAnalyzerServicer:
    servicer = _PolicyAnalyzerServicer(PACK_NAME, "0.1.0", policies(), EnforcementLevel.MANDATORY)
    request = proto.ConfigureAnalyzerRequest()
    levels = {"mandatory": proto.MANDATORY, "advisory": proto.ADVISORY}
    for rule in RULES:  # as the CLI does: every policy, its level, the file's properties
        entry = load_policy_config(config_path(stack)).get(rule.name, {})
        request.policyConfig[rule.name].enforcementLevel = levels[rule.enforcement]
        request.policyConfig[rule.name].properties.update(entry)
    servicer.Configure(request, None)
    return servicer


def _struct(props: Any) -> struct_pb2.Struct:
    return json_format.ParseDict(json.loads(json.dumps(props)), struct_pb2.Struct())


def _analyzer_resource(stack: str, r: Resource, deps: dict[str, list[str]]) -> Any:
    resource = proto.AnalyzerResource(
        type=r.type, properties=_struct(r.props), urn=_urn(stack, r), name=r.name
    )
    for key, urns in deps.items():
        resource.propertyDependencies[key].urns.extend(urns)
    return resource


def _mandatory(response: Any) -> list[Any]:
    return [d for d in response.diagnostics if d.enforcementLevel == proto.MANDATORY]


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_servicer_passes_shipped_stacks(stack: str) -> None:
    servicer = _servicer(stack)
    resources = render(stack)
    for r in resources:
        request = proto.AnalyzeRequest(type=r.type, properties=_struct(r.props), name=r.name)
        assert _mandatory(servicer.Analyze(request, None)) == []
    request = proto.AnalyzeStackRequest(
        resources=[_analyzer_resource(stack, r, {}) for r in resources]
    )
    assert _mandatory(servicer.AnalyzeStack(request, None)) == []


def test_servicer_links_bucket_settings_by_dependency_while_ids_are_unknown() -> None:
    """At the first preview a bucket's id is unknown; the engine's property dependencies still
    tie BucketVersioning to its Bucket, so the rule can judge."""
    resources = render("production")
    bucket = next(r for r in resources if r.type == p.BUCKET)
    built = []
    for r in resources:
        deps: dict[str, list[str]] = {}
        if r.type.startswith("aws:s3/bucket") and r.type != p.BUCKET:
            r.props["bucket"] = UNKNOWN_STRING_VALUE  # type: ignore[index]
            deps = {"bucket": [_urn("production", bucket)]}
        built.append(_analyzer_resource("production", r, deps))
    response = _servicer("production").AnalyzeStack(
        proto.AnalyzeStackRequest(resources=built), None
    )
    judged = {d.policyName for d in response.diagnostics}
    assert "s3-bucket-versioning" not in judged  # linked, judged, passed
    assert _mandatory(response) == []


def test_servicer_says_cannot_judge_yet_for_unknown_values() -> None:
    resources = render("production")
    cronjob = next(r for r in resources if r.type == p.CRONJOB)
    cronjob.props["spec"]["concurrencyPolicy"] = UNKNOWN_STRING_VALUE  # type: ignore[index]
    request = proto.AnalyzeRequest(type=cronjob.type, properties=_struct(cronjob.props))
    response = _servicer("production").Analyze(request, None)
    [diagnostic] = [d for d in response.diagnostics if d.policyName == "cronjob-concurrency-forbid"]
    assert diagnostic.enforcementLevel == proto.ADVISORY
    assert "during preview" in diagnostic.message


def test_servicer_fails_a_weakened_stack_with_the_rule_message() -> None:
    resources = render("production")
    writer = next(r for r in resources if r.type == p.IAM_ROLE_POLICY and "writer" in r.name)
    doc = json.loads(writer.props["policy"])
    doc["Statement"][1]["Action"] = ["s3:*"]
    writer.props["policy"] = json.dumps(doc)  # type: ignore[index]
    request = proto.AnalyzeRequest(type=writer.type, properties=_struct(writer.props))
    [diagnostic] = _mandatory(_servicer("production").Analyze(request, None))
    assert diagnostic.policyName == "iam-no-delete"
    assert "allows 's3:*'" in diagnostic.message and "Fix:" in diagnostic.message


def test_unknown_value_raises_for_the_engine_to_report() -> None:
    from pulumi_policy.proxy import unknown_checking_proxy

    pvc = next(r for r in render("staging") if r.type == p.PVC)
    props = dict(pvc.props)
    props["spec"] = {"resources": {"requests": {"storage": UNKNOWN_STRING_VALUE}}}
    args = _resource_args("staging", Resource(pvc.type, pvc.name, unknown_checking_proxy(props)))
    with pytest.raises(UnknownValueError):
        _run(_policy("pvc-min-size"), args)
