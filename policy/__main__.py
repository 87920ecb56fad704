"""Entry point Pulumi runs for `--policy-pack policy`: serves the pack's policies over gRPC.

Pulumi runs this file with the pack's own folder on sys.path; the rules live in the project's
`policy` package, so the folder above is added too.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from policy.pack import PACK_NAME, policies  # noqa: E402

PolicyPack(
    name=PACK_NAME,
    description="PostgreSQL backup stacks: bucket hardening, pod security, CronJob safety, "
    "least-privilege RBAC and IAM, retention floors, pinned images.",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=policies(),
)
