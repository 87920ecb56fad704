"""Offline render: the stack's declared resources as files, like `helm template`.

`collect_resources(stack, overrides)` is the entry point other tools use (the policy check).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from infra.mock_run import DeclaredResource, ProgramRun, collect_resources, run_program

__all__ = [
    "DeclaredResource",
    "ProgramRun",
    "collect_resources",
    "render",
    "run_program",
]


def plain_numbers(value: Any) -> Any:
    """Under the mock runtime numbers arrive as floats (`300.0`); strict schemas want integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: plain_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_numbers(v) for v in value]
    return value


def sorted_keys(value: Any) -> Any:
    """Stable output: mapping keys sorted (list order is meaning, e.g. env, and stays)."""
    if isinstance(value, dict):
        return {k: sorted_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [sorted_keys(v) for v in value]
    return value


def kubernetes_manifest(resource: DeclaredResource) -> dict[str, Any]:
    """The object as `kubectl apply` would receive it (apiVersion, kind, metadata first)."""
    inputs = sorted_keys(plain_numbers(resource.inputs))
    head = {k: inputs.pop(k) for k in ("apiVersion", "kind", "metadata")}
    return {**head, **inputs}


def aws_document(resource: DeclaredResource) -> dict[str, Any]:
    options: dict[str, Any] = {"protect": resource.protect}
    if resource.import_id:
        options["import"] = resource.import_id
    return {
        "type": resource.type,
        "name": resource.name,
        "options": options,
        "properties": sorted_keys(plain_numbers(resource.inputs)),
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (scripts, policy JSON) as literal blocks, readable in a diff."""


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str_representer)


def dump_yaml(document: Any) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=100)


def _file_name(kind: str, name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name)
    return f"{kind.lower()}-{safe}.yaml"


def render(
    stack: str,
    out_dir: Path | str,
    overrides: dict[str, Any] | None = None,
    project_dir: Path | None = None,
) -> list[Path]:
    """Write `kubernetes/*.yaml` (one object per file), `aws/*.yaml` and `exports.yaml` under
    `out_dir` (emptied of an earlier render first); return the files written."""
    run = run_program(stack, overrides, project_dir)
    out = Path(out_dir)
    for sub in ("kubernetes", "aws"):
        if (out / sub).is_dir():
            shutil.rmtree(out / sub)
        (out / sub).mkdir(parents=True)
    written: list[Path] = []
    for resource in run.resources:
        if resource.is_kubernetes:
            manifest = kubernetes_manifest(resource)
            path = out / "kubernetes" / _file_name(manifest["kind"], manifest["metadata"]["name"])
            path.write_text(dump_yaml(manifest))
        elif resource.is_aws:
            kind = resource.type.rsplit(":", 1)[-1]
            path = out / "aws" / _file_name(kind, resource.name)
            path.write_text(dump_yaml(aws_document(resource)))
        else:
            continue
        written.append(path)
    exports = out / "exports.yaml"
    exports.write_text(dump_yaml(plain_numbers(run.exports)))
    written.append(exports)
    return sorted(written)
