"""The backup PVC: where sets are written before they go offsite, and where old `.sql.gz` dumps of
the Helm chart stay restorable after the migration (adopted with `import_`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra.validate import ConfigError


@dataclass(frozen=True)
class BackupVolumeArgs:
    namespace: str
    pvc_name: str
    size: str
    storage_class: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    # Adopt the Helm chart's PVC instead of creating one ("<namespace>/<name>").
    import_existing: bool = False

    def __post_init__(self) -> None:
        if not self.size:
            raise ConfigError("BackupVolumeArgs.size is empty", "give a quantity, e.g. 30Gi")


class BackupVolume(pulumi.ComponentResource):
    pvc_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: BackupVolumeArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("pgbackup:index:BackupVolume", name, None, opts)
        spec: Any = {
            "access_modes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": args.size}},
        }
        metadata: Any = {
            "name": args.pvc_name,
            "namespace": args.namespace,
            "labels": args.labels,
            # If the Helm release is ever uninstalled, Helm leaves the volume alone.
            "annotations": {"helm.sh/resource-policy": "keep"},
        }
        if args.storage_class:
            spec["storage_class_name"] = args.storage_class
        pvc = k8s.core.v1.PersistentVolumeClaim(
            f"{name}-pvc",
            metadata=metadata,
            spec=spec,
            opts=pulumi.ResourceOptions(
                parent=self,
                protect=True,
                import_=f"{args.namespace}/{args.pvc_name}" if args.import_existing else None,
            ),
        )
        self.pvc_name = pvc.metadata.apply(lambda m: m.name or args.pvc_name)
        self.register_outputs({"pvc_name": self.pvc_name})
