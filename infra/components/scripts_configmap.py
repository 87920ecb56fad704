"""The ConfigMap carrying the in-container steps: the very files of `jobs/scripts/`, read when the
program runs, so the cluster runs exactly what the tests ran."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

from infra.validate import ConfigError

SCRIPTS_DIR = Path(__file__).resolve().parents[2] / "jobs" / "scripts"
# ConfigMaps are capped at 1 MiB in etcd.
MAX_BYTES = 1024 * 1024


def read_scripts(directory: Path = SCRIPTS_DIR) -> dict[str, str]:
    """`*.sh` and README files of the scripts folder, by file name."""
    files = sorted([*directory.glob("*.sh"), *directory.glob("README*")])
    return {path.name: path.read_text(encoding="utf-8") for path in files if path.is_file()}


@dataclass(frozen=True)
class ScriptsConfigMapArgs:
    namespace: str
    configmap_name: str
    files: Mapping[str, str]
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        size = sum(len(text.encode()) for text in self.files.values())
        if size > MAX_BYTES:
            raise ConfigError(
                f"the scripts total {size} bytes, above the ConfigMap limit of {MAX_BYTES}",
                "keep jobs/scripts/ small (no data files)",
            )


class ScriptsConfigMap(pulumi.ComponentResource):
    configmap_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: ScriptsConfigMapArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("pgbackup:index:ScriptsConfigMap", name, None, opts)
        configmap = k8s.core.v1.ConfigMap(
            f"{name}-configmap",
            metadata={
                "name": args.configmap_name,
                "namespace": args.namespace,
                "labels": args.labels,
            },
            data=dict(args.files),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.configmap_name = configmap.metadata.apply(lambda m: m.name or args.configmap_name)
        self.register_outputs({"configmap_name": self.configmap_name})
