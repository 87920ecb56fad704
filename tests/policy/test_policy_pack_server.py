"""The pack as Pulumi starts it: `policy/__main__.py` in its own process, serving gRPC on
127.0.0.1; the test speaks the analyzer protocol to it as the engine would."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2, json_format, struct_pb2
from policy_cases import render
from pulumi.runtime import proto
from pulumi.runtime.proto import analyzer_pb2_grpc

from policy.evaluate import config_path, load_policy_config
from policy.rules import RULES

PACK = Path(__file__).resolve().parents[2] / "policy"


@pytest.fixture(scope="module")
def analyzer() -> Iterator[Any]:
    # As `python -m pulumi.policy` does: run the folder, with the folder first on sys.path.
    process = subprocess.Popen(
        [sys.executable, "-u", str(PACK)], stdout=subprocess.PIPE, text=True, cwd=PACK
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline().strip())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        process.terminate()
        process.wait()


def test_serves_every_rule_with_its_level_and_config_schema(analyzer: Any) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == "pgbackup"
    served = {p.name: p for p in info.policies}
    assert set(served) == {rule.name for rule in RULES}
    assert served["pvc-min-size"].configSchema.properties["minStorage"]["default"] == "10Gi"
    assert served["restore-drill-enabled"].enforcementLevel == proto.ADVISORY
    assert served["s3-tls-only"].enforcementLevel == proto.MANDATORY


def _struct(props: Any) -> struct_pb2.Struct:
    return json_format.ParseDict(json.loads(json.dumps(props)), struct_pb2.Struct())


def _configure(analyzer: Any, stack: str) -> None:
    request = proto.ConfigureAnalyzerRequest()
    levels = {"mandatory": proto.MANDATORY, "advisory": proto.ADVISORY}
    config = load_policy_config(config_path(stack))
    for rule in RULES:
        request.policyConfig[rule.name].enforcementLevel = levels[rule.enforcement]
        request.policyConfig[rule.name].properties.update(config.get(rule.name, {}))
    analyzer.Configure(request)


def _analyze_stack(analyzer: Any, stack: str, resources: list[Any]) -> list[Any]:
    request = proto.AnalyzeStackRequest(
        resources=[
            proto.AnalyzerResource(
                type=r.type,
                name=r.name,
                urn=f"urn:pulumi:{stack}::pgbackup::{r.type}::{r.name}",
                properties=_struct(r.props),
            )
            for r in resources
        ]
    )
    response = analyzer.AnalyzeStack(request)
    return [d for d in response.diagnostics if d.enforcementLevel == proto.MANDATORY]


def test_production_passes_and_its_floor_applies_over_grpc(analyzer: Any) -> None:
    _configure(analyzer, "production")
    assert _analyze_stack(analyzer, "production", render("production")) == []
    # Staging has no Object Lock: under production's policy config that is a violation.
    messages = [
        d.message
        for d in _analyze_stack(analyzer, "production", render("staging"))
        if d.policyName == "s3-object-lock"
    ]
    assert any("without Object Lock" in m and "Fix:" in m for m in messages), messages
