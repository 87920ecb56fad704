"""The pack's README lists every rule with its level, and the shipped configs name real rules."""

from __future__ import annotations

from pathlib import Path

from policy.evaluate import config_path, load_policy_config
from policy.rules import RULES

README = Path(__file__).resolve().parents[2] / "policy" / "README.md"


def test_readme_lists_every_rule_with_its_level() -> None:
    text = README.read_text()
    for rule in RULES:
        assert f"| `{rule.name}` | {rule.enforcement} |" in text, rule.name


def test_shipped_configs_load_and_set_only_known_tunables() -> None:
    by_name = {rule.name: rule for rule in RULES}
    for stack in ("staging", "production"):
        for name, entry in load_policy_config(config_path(stack)).items():
            assert set(entry) - {"enforcementLevel"} <= set(by_name[name].config_schema), name


def test_every_rule_has_a_firing_case_in_the_rule_tests() -> None:
    sources = "\n".join(
        path.read_text() for path in Path(__file__).parent.glob("test_policy_rules_*.py")
    )
    untested = [rule.name for rule in RULES if f'"{rule.name}"' not in sources]
    assert untested == []
