"""Cases for the policy tests, from real component output: each shipped stack rendered by the
real program under Pulumi's mock runtime, and variants weakened through stack config or by
mutating rendered props."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

from infra.config import raw_stack_config
from jobs.commands.policy import declared_resources
from policy.evaluate import Outcome, config_path, evaluate, load_policy_config
from policy.rules import Resource

STACKS = ("staging", "production")


@cache
def _render(stack: str, overrides_json: str) -> tuple[Resource, ...]:
    overrides = json.loads(overrides_json) or None
    return tuple(declared_resources(stack, overrides))


def render(stack: str, overrides: dict[str, Any] | None = None) -> list[Resource]:
    """The stack's declared resources (a private copy: tests may mutate it)."""
    key = json.dumps(overrides or {}, sort_keys=True)
    return copy.deepcopy(list(_render(stack, key)))


def weakened(stack: str, key: str, change: Callable[[Any], None]) -> list[Resource]:
    """Render `stack` with one top-level config key edited in place by `change`."""
    value = copy.deepcopy(raw_stack_config(stack)[f"pgbackup:{key}"])
    change(value)
    return render(stack, {key: value})


def first_db(change: Callable[[dict[str, Any]], None]) -> Callable[[list[Any]], None]:
    def apply(databases: list[Any]) -> None:
        change(databases[0])

    return apply


def one(resources: Sequence[Resource], type_token: str, contains: str = "") -> Resource:
    found = [r for r in resources if r.type == type_token and contains in r.name]
    assert len(found) == 1, f"expected one {type_token} named *{contains}*, got {found}"
    return found[0]


def backup_cronjob(resources: Sequence[Resource]) -> dict[str, Any]:
    """The props of the guide's CronJob, `vocab-app-postgres-backup`."""
    found = [
        r
        for r in resources
        if r.type == "kubernetes:batch/v1:CronJob"
        and r.props["metadata"]["name"] == "vocab-app-postgres-backup"
    ]
    assert len(found) == 1, found
    return found[0].props  # type: ignore[return-value]


def outcomes(stack: str, resources: Sequence[Resource], rule: str) -> list[Outcome]:
    config = load_policy_config(config_path(stack))
    return [o for o in evaluate(resources, config) if o.rule == rule]


def problems(stack: str, resources: Sequence[Resource], rule: str) -> list[Outcome]:
    return [o for o in outcomes(stack, resources, rule) if o.result in ("fail", "warn", "unknown")]


def assert_passes(stack: str, rule: str) -> None:
    found = outcomes(stack, render(stack), rule)
    assert found, f"{rule} did not run on {stack}"
    assert [o for o in found if o.result not in ("pass", "skip")] == [], found


def assert_fires(
    stack: str, resources: Sequence[Resource], rule: str, *phrases: str, result: str = "fail"
) -> Outcome:
    """The rule reports a problem whose message names the fault, the reason and the fix."""
    found = problems(stack, resources, rule)
    assert found, f"{rule} did not fire"
    hits = [o for o in found if all(phrase in o.message for phrase in phrases)]
    assert hits, f"no {rule} message has all of {phrases}: {[o.message for o in found]}"
    hit = hits[0]
    assert hit.result == result, hit
    assert "Why it matters:" in hit.message and "Fix:" in hit.message, hit.message
    return hit
