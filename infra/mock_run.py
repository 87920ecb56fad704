"""Run the real program for one stack under Pulumi's mock runtime and collect what it declares.

The engine is the one thing replaced: the program, its config parsing and every component run as
under `pulumi up`. The mocks echo inputs back as state and add the ids and ARNs AWS would assign.

Each run happens in a fresh thread with an empty `contextvars.Context` and its own event loop:
Pulumi keeps its settings, config and root Stack in context variables, so runs never see each
other and can repeat any number of times in one process.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.config import NAMESPACE, PROJECT_DIR, SECRET_KEYS, raw_stack_config

SECRET_VALUE = "[secret]"  # noqa: S105 (a placeholder)
ACCOUNT = "123456789012"
# Pulumi's wire markers for secret values (pulumi.runtime.rpc).
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # noqa: S105
_SIG_KEY = "4dabf18193072939515e22adb298388d"


@dataclass(frozen=True)
class DeclaredResource:
    """One resource the program registered, as the engine would have received it."""

    type: str  # type token, e.g. "kubernetes:batch/v1:CronJob", "aws:s3/bucket:Bucket"
    name: str  # logical (Pulumi) name
    inputs: dict[str, Any]  # resolved inputs; Kubernetes ones camelCased; secrets as "[secret]"
    urn: str
    parent: str | None = None  # parent URN
    custom: bool = True  # False for component resources
    protect: bool = False
    import_id: str | None = None
    provider: str | None = None
    depends_on: tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_kubernetes(self) -> bool:
        return self.custom and self.type.startswith("kubernetes:") and "Provider" not in self.type

    @property
    def is_aws(self) -> bool:
        return self.custom and self.type.startswith("aws:")


@dataclass(frozen=True)
class ProgramRun:
    stack: str
    resources: list[DeclaredResource]
    exports: dict[str, Any]


def _plain(value: Any) -> Any:
    """Unwrap RPC secrets (to a placeholder) and copy into plain dicts and lists."""
    if isinstance(value, Mapping):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            return _masked(value.get("value"))
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _masked(value: Any) -> Any:
    """A secret keeps its shape (a Secret's `stringData` stays a mapping); its values do not."""
    if isinstance(value, Mapping):
        return {k: _masked(v) for k, v in value.items() if k != _SIG_KEY}
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    return SECRET_VALUE


def _fake_state(rtype: str, name: str, inputs: dict[str, Any], region: str) -> dict[str, Any]:
    """What AWS would add: ids and ARNs, derived from the names the program chose."""
    state = dict(inputs)
    if rtype == "aws:s3/bucket:Bucket":
        bucket = inputs.get("bucket", name)
        state.update(arn=f"arn:aws:s3:::{bucket}", bucket=bucket)
    elif rtype == "aws:kms/key:Key":
        key_id = f"mock-{name}"
        state.update(keyId=key_id, arn=f"arn:aws:kms:{region}:{ACCOUNT}:key/{key_id}")
    elif rtype in ("aws:iam/role:Role", "aws:iam/user:User"):
        kind = rtype.rsplit(":", 1)[1].lower()
        state["arn"] = f"arn:aws:iam::{ACCOUNT}:{kind}/{inputs.get('name', name)}"
    elif rtype == "aws:iam/accessKey:AccessKey":
        state["secret"] = "mock-secret-access-key"  # noqa: S105 (fake, offline)
    return state


def _resource_id(rtype: str, name: str, inputs: dict[str, Any]) -> str:
    if rtype.startswith("kubernetes:"):
        meta = inputs.get("metadata") or {}
        ns = meta.get("namespace")
        return f"{ns}/{meta.get('name', name)}" if ns else str(meta.get("name", name))
    if rtype == "aws:s3/bucket:Bucket":
        return str(inputs.get("bucket", name))
    if rtype == "aws:iam/accessKey:AccessKey":
        return "AKIAMOCKACCESSKEYID00"
    return str(inputs.get("name") or f"{name}-id")


def _apply_override(config: dict[str, Any], key: str, value: Any) -> None:
    """`pgbackup:offsite` or `offsite` replaces the key; `offsite.objectLock.days` or
    `databases[0].retentionDays` replaces one nested field; a value of None removes it."""
    head, *rest = re.split(r"\.(?![^\[]*\])", key, maxsplit=1)
    match = re.fullmatch(r"([^\[]+)((?:\[\d+\])*)", head)
    if match is None:
        raise KeyError(key)
    top = match[1] if ":" in match[1] else f"{NAMESPACE}:{match[1]}"
    path: list[str | int] = [int(i) for i in re.findall(r"\[(\d+)\]", match[2])]
    if rest:
        for part in rest[0].split("."):
            m = re.fullmatch(r"([^\[]+)((?:\[\d+\])*)", part)
            if m is None:
                raise KeyError(key)
            path.append(m[1])
            path += [int(i) for i in re.findall(r"\[(\d+)\]", m[2])]
    if not path:
        if value is None:
            config.pop(top, None)
        else:
            config[top] = value
        return
    node = config.setdefault(top, {})
    for step in path[:-1]:
        node = node.setdefault(step, {}) if isinstance(step, str) else node[step]
    last = path[-1]
    if value is None:
        if isinstance(last, str):
            node.pop(last, None)
        else:
            del node[last]
    else:
        node[last] = value


def stack_config_values(
    stack: str, overrides: Mapping[str, Any] | None = None, project_dir: Path | None = None
) -> dict[str, Any]:
    config = copy.deepcopy(raw_stack_config(stack, project_dir))
    for key, value in (overrides or {}).items():
        _apply_override(config, key, copy.deepcopy(value))
    return config


def _run_program(stack: str, config: dict[str, Any]) -> ProgramRun:
    import pulumi
    from pulumi.runtime.mocks import MockMonitor
    from pulumi.runtime.stack import run_pulumi_func

    from infra.program import declare

    region = str(config.get("aws:region") or "eu-west-1")
    recorded: dict[str, dict[str, Any]] = {}

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
            inputs = dict(args.inputs)
            return _resource_id(args.typ, args.name, inputs), _fake_state(
                args.typ, args.name, inputs, region
            )

        def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list | None]:
            return {}, None

    class RecordingMonitor(MockMonitor):
        """Keeps the resource options the plain mocks do not see (protect, import, parent)."""

        def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
            response = super().RegisterResource(request)
            if request.type != "pulumi:pulumi:Stack":
                from pulumi.runtime import rpc

                recorded[response.urn] = {
                    "type": request.type,
                    "name": request.name,
                    "inputs": _plain(rpc.deserialize_properties(request.object)),
                    "parent": request.parent or None,
                    "custom": bool(request.custom),
                    "protect": bool(request.protect),
                    "import_id": request.importId or None,
                    "provider": request.provider or None,
                    "depends_on": tuple(request.dependencies),
                }
            return response

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    mocks = Mocks()
    pulumi.runtime.set_mocks(
        mocks, project="pgbackup", stack=stack, preview=False, monitor=RecordingMonitor(mocks)
    )
    secret_keys = [f"{NAMESPACE}:{k}" for k in SECRET_KEYS if f"{NAMESPACE}:{k}" in config]
    pulumi.runtime.set_all_config(
        {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()},
        secret_keys,
    )
    from infra.config import from_pulumi

    exports: dict[str, Any] = {}

    async def program() -> None:
        declare(from_pulumi())
        root = pulumi.runtime.get_root_resource()
        outputs = getattr(root, "outputs", {})
        exports.update(await pulumi.Output.from_input(outputs).future() or {})

    try:
        loop.run_until_complete(run_pulumi_func(program))
    finally:
        loop.close()
    # Registration order depends on how outputs resolve: sort for a stable result.
    resources = [DeclaredResource(urn=urn, **recorded[urn]) for urn in sorted(recorded)]
    return ProgramRun(stack, resources, _plain(exports))


def run_program(
    stack: str, overrides: Mapping[str, Any] | None = None, project_dir: Path | None = None
) -> ProgramRun:
    """Run the program for `stack` (config from `Pulumi.<stack>.yaml`, with `overrides`)."""
    config = stack_config_values(stack, overrides, project_dir or PROJECT_DIR)
    result: list[ProgramRun] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(_run_program(stack, config))
        except BaseException as exc:  # noqa: BLE001 (handed to the calling thread)
            error.append(exc)

    thread = threading.Thread(target=contextvars.Context().run, args=(target,), daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def collect_resources(
    stack_name: str, overrides: dict[str, Any] | None = None
) -> list[DeclaredResource]:
    """Every resource the stack declares (components included: see `.custom`)."""
    return run_program(stack_name, overrides).resources
