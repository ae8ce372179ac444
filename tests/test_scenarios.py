"""Every clinical scenario in fhir_fixtures/, replayed as an EHR would send it, gives the expected cards.

The warning and critical cards must be exactly the manifest's ``expected_cards``; whatever else fires is
info at most. The same scenarios also go through order-select and through the offline evaluate command.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from cds_service.knowledge import Knowledge
from tests.support import SELECT, SIGN, assert_valid, hook_request, manifest, rule_ids

SCENARIOS = manifest()["scenarios"]


def _expected(entry: dict[str, Any]) -> set[tuple[str, str]]:
    return {(card["rule_id"], card["indicator"]) for card in entry["expected_cards"] or []}


def _expected_info(entry: dict[str, Any]) -> set[tuple[str, str]]:
    """Info cards the scenario must show (other info cards may appear too)."""
    return {(card["rule_id"], "info") for card in entry.get("expected_info") or []}


@pytest.mark.parametrize("entry", SCENARIOS, ids=[s["name"] for s in SCENARIOS])
def test_scenario_order_sign(client: TestClient, knowledge: Knowledge, entry: dict[str, Any]) -> None:
    response = client.post(f"/cds-services/{SIGN}", json=hook_request(knowledge, entry["name"]))
    assert response.status_code == 200, response.text
    body = response.json()
    assert_valid(body, "ServiceResponse")
    assert rule_ids(body, at_least="warning") == _expected(entry)
    assert _expected_info(entry) <= rule_ids(body)
    if entry["name"] == "no-palbociclib-order":
        assert body["cards"] == []


@pytest.mark.parametrize("entry", SCENARIOS, ids=[s["name"] for s in SCENARIOS])
def test_scenario_order_select(client: TestClient, knowledge: Knowledge, entry: dict[str, Any]) -> None:
    request = hook_request(knowledge, entry["name"], SELECT)
    assert_valid(request, "ServiceRequest")
    body = client.post(f"/cds-services/{SELECT}", json=request).json()
    assert_valid(body, "ServiceResponse")
    assert rule_ids(body, at_least="warning") == _expected(entry)


def test_manifest_names_every_rule_firing_and_a_near_miss(knowledge: Knowledge) -> None:
    """Each card a rule can raise has a scenario that fires it; a clean order exists."""
    fired = {
        card["rule_id"]
        for entry in SCENARIOS
        for card in (entry["expected_cards"] or []) + (entry.get("expected_info") or [])
    }
    rule_cards = {card for rule in knowledge.rules for card in rule.fires}
    assert rule_cards <= fired
    assert any(not entry["expected_cards"] for entry in SCENARIOS)
