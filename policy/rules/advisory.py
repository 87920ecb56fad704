"""Judgements rather than hard rules: a reviewer should see them, a deployment need not stop."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from .model import Config, NotApplicable, Resource, StackRule, Violation, explain
from .props import CRONJOB, PROMETHEUS_RULE, k8s_name, of_type


def _has_backups(resources: Sequence[Resource]) -> None:
    if not of_type(resources, CRONJOB):
        raise NotApplicable("the stack declares no CronJob")


def _drill(resources: Sequence[Resource], config: Config) -> Iterator[Violation]:
    _has_backups(resources)
    marker = str(config["drillNameContains"])
    if not any(marker in k8s_name(c) for c in of_type(resources, CRONJOB)):
        yield Violation(
            explain(
                "no scheduled restore drill",
                "a backup nobody has restored is a hope, not a backup; the drill proves each "
                "month that the newest set restores and passes its checks",
                "set drill.enabled true in the stack config",
            )
        )


def _alerts(resources: Sequence[Resource], config: Config) -> Iterator[Violation]:
    _has_backups(resources)
    if not of_type(resources, PROMETHEUS_RULE):
        yield Violation(
            explain(
                "no alerting rules for failed or missing backups",
                "a CronJob that fails quietly is found out on the day a restore is needed",
                "set alerts.enabled true in the stack config where the Prometheus Operator runs",
            )
        )


RULES = (
    StackRule(
        "restore-drill-enabled",
        "A scheduled restore drill proves the backups restore (advisory).",
        "advisory",
        {"drillNameContains": {"type": "string", "default": "drill"}},
        _drill,
    ),
    StackRule(
        "backup-alerts-enabled",
        "Alerts fire when a backup fails or none is verified for too long (advisory).",
        "advisory",
        {},
        _alerts,
    ),
)
