"""GET /cds-services: two services from one registry, spec-only prefetch tokens, bounded queries."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from fastapi.testclient import TestClient

from tests.support import SELECT, SIGN, assert_valid

SPEC_TOKENS = {
    "context.patientId",
    "context.userId",
    "context.encounterId",
    "userPractitionerId",
    "userPractitionerRoleId",
    "userPatientId",
    "userRelatedPersonId",
}


def test_discovery_lists_both_services(client: TestClient) -> None:
    response = client.get("/cds-services")
    assert response.status_code == 200
    body = response.json()
    assert_valid(body, "DiscoveryResponse")
    services = {s["id"]: s for s in body["services"]}
    assert set(services) == {SIGN, SELECT}
    assert services[SIGN]["hook"] == "order-sign"
    assert services[SELECT]["hook"] == "order-select"
    assert services[SIGN]["prefetch"] == services[SELECT]["prefetch"]
    for service in services.values():
        assert service["title"]
        assert service["description"]


def test_prefetch_uses_only_spec_tokens_and_bounded_queries(client: TestClient) -> None:
    prefetch = client.get("/cds-services").json()["services"][0]["prefetch"]
    assert prefetch["patient"] == "Patient/{{context.patientId}}"
    for key, template in prefetch.items():
        tokens = set(re.findall(r"\{\{\s*([^}]+?)\s*\}\}", template))
        assert tokens <= SPEC_TOKENS, (key, tokens)
        if "?" not in template:
            continue
        kind, query = template.split("?", 1)
        params = dict(parse_qsl(query))
        assert params.get("patient") == "{{context.patientId}}", key
        assert "_count" in params, f"{key} is unbounded"
        if kind == "Observation":
            assert params.get("_sort") == "-date", key
            assert params["code"], key
            assert all(code.startswith("http://loinc.org|") for code in params["code"].split(",")), key


def test_prefetch_covers_what_the_rules_need(client: TestClient) -> None:
    prefetch = client.get("/cds-services").json()["services"][0]["prefetch"]
    expected_codes = {
        "cbc": ["751-8", "26499-4", "777-3", "718-7", "6690-2"],
        "receptors": ["85337-4", "16112-5", "85339-0", "85319-2", "48676-1"],
        "hormones": ["15067-2", "2243-4"],
        "chemistry": ["1920-8", "1742-6", "1975-2", "2160-0"],
        "pregnancyTests": ["2106-3", "21198-7"],
        "esr1": ["69548-6"],
    }
    for key, codes in expected_codes.items():
        for code in codes:
            assert f"http://loinc.org|{code}" in prefetch[key], (key, code)
    assert prefetch["medicationRequests"].startswith("MedicationRequest?patient={{context.patientId}}")
    assert "status=active,on-hold" in prefetch["medicationRequests"]
    assert prefetch["medicationStatements"].startswith("MedicationStatement?")
    assert prefetch["conditions"].startswith("Condition?")
    assert prefetch["procedures"].startswith("Procedure?")


def test_discovery_and_version_report_the_knowledge_version(client: TestClient) -> None:
    version = client.get("/version").json()
    assert version["knowledgeVersion"].startswith(version["packageVersion"] + "+")
    services = client.get("/cds-services").json()["services"]
    for service in services:
        assert service["extension"]["org.palbociclib-cds.knowledge"]["knowledgeVersion"] == version["knowledgeVersion"]
    assert {r["name"] for r in version["rules"]} >= {"receptor-status", "endocrine-partner"}
