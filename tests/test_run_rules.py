"""How a call runs the rules: a rule whose cards the site disabled does not run, one whose data is missing is
skipped and named, one that raises is skipped without taking the others down, and each gets its thresholds
as the site set them."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import pytest

from cds_service.knowledge import Knowledge, load_knowledge
from cds_service.pipeline import run_rules
from cds_service.rules.base import Finding, Rule, Threshold
from cds_service.site import load_site_config
from cds_service.snapshot.model import PalbociclibOrder, PatientSnapshot
from tests.rules.test_blood_counts import order, snapshot
from tests.support import REPO

seen: list[tuple[str, dict[str, Threshold]]] = []


def _rule(name: str, card: str, needs: frozenset[str] = frozenset(), *, fails: bool = False) -> Rule:
    def evaluate(snap: PatientSnapshot, draft: PalbociclibOrder, thresholds: Mapping[str, Threshold]) -> list[Finding]:
        seen.append((name, dict(thresholds)))
        if fails:
            raise ValueError("a patient value that must not reach the log")
        return [Finding(card)]

    return Rule(name=name, fires=(card,), needs=needs, evaluate=evaluate, thresholds={"days": 14})


@pytest.fixture
def knowledge(tmp_path: Path) -> Knowledge:
    seen.clear()
    rules = (
        _rule("recency", "cbc-stale"),
        _rule("switched-off", "neutropenia-grade3"),
        _rule("needs-receptors", "receptor-er-negative", frozenset({"receptors"})),
        _rule("broken", "thrombocytopenia", fails=True),
        _rule("after-broken", "anemia"),
    )
    site_file = tmp_path / "site.yaml"
    site_file.write_text(
        "cards:\n  neutropenia-grade3: {enabled: false}\nthresholds:\n  recency: {days: 21}\n", encoding="utf-8"
    )
    loaded = load_knowledge(REPO / "cards")
    site = load_site_config(site_file, rules, loaded.catalogue.entries)
    return dataclasses.replace(loaded, rules=rules, site=site)


def test_the_rules_run_as_the_site_configured_them(knowledge: Knowledge, caplog: pytest.LogCaptureFixture) -> None:
    skipped: dict[str, str] = {}
    findings = run_rules(knowledge, snapshot(available=frozenset({"cbc"})), order(), skipped)

    assert [f.rule_id for f in findings] == ["cbc-stale", "anemia"]
    assert seen == [("recency", {"days": 21}), ("broken", {"days": 14}), ("after-broken", {"days": 14})]
    assert skipped == {"needs-receptors": "missing data: receptors", "broken": "internal error"}
    assert "rule failed: broken raised ValueError" in caplog.text
    assert "patient value" not in caplog.text


def test_the_plan_is_worked_out_once(knowledge: Knowledge) -> None:
    assert knowledge.rule_plan is knowledge.rule_plan
    assert [rule.name for rule, _ in knowledge.rule_plan] == ["recency", "needs-receptors", "broken", "after-broken"]
