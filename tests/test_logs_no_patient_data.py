"""Application logs are structured JSON and carry no patient identifiers, names, values or tokens."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
import respx
from fastapi.testclient import TestClient

from cds_service.logging_setup import JsonFormatter
from cds_service.scenarios import record_resources
from tests.support import SIGN, fallback_request, fhir_routes, hook_request, manifest, scenario

BASE = "https://ehr.example.org/fhir"


def _sensitive(names: list[str]) -> set[str]:
    """Every identifying string and value in the scenarios: resource ids, names, birth dates, result values."""
    found: set[str] = {"secret-token"}
    for name in names:
        for resource in record_resources(scenario(name)):
            if isinstance(resource.get("id"), str) and len(resource["id"]) > 4:
                found.add(resource["id"])
            for person in resource.get("name") or []:
                found.update(part for part in [person.get("family"), *(person.get("given") or [])] if part)
            if resource.get("birthDate"):
                found.add(resource["birthDate"])
            quantity = resource.get("valueQuantity") or {}
            if "value" in quantity and quantity.get("unit"):
                found.add(f"{quantity['value']} {quantity['unit']}")
            if isinstance(resource.get("valueString"), str) and len(resource["valueString"]) > 3:
                found.add(resource["valueString"])
    return found


def test_every_scenario_leaves_no_patient_data_in_the_logs(
    client: TestClient, knowledge: Any, caplog: pytest.LogCaptureFixture
) -> None:
    names = [s["name"] for s in manifest()["scenarios"]]
    with caplog.at_level(logging.DEBUG):
        for name in names:
            assert client.post(f"/cds-services/{SIGN}", json=hook_request(knowledge, name)).status_code == 200
        with respx.mock(assert_all_called=False) as router:
            routes = fhir_routes(router, knowledge, "clean-base-order", BASE)
            routes["conditions"].mock(return_value=httpx.Response(503))
            client.post(f"/cds-services/{SIGN}", json=fallback_request(knowledge, "clean-base-order", BASE))
        broken = hook_request(knowledge, "partner-missing")
        broken["context"]["draftOrders"] = {"resourceType": "Patient", "name": [{"family": "Leaky"}]}
        client.post(f"/cds-services/{SIGN}", json=broken)
    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    text = "\n".join(lines)
    leaked = sorted(value for value in _sensitive(names) | {"Leaky"} if value in text)
    assert not leaked, f"patient data in the logs: {leaked[:10]}"
    requests = [json.loads(line) for line in lines if json.loads(line)["message"] == "request"]
    hooks = [r for r in requests if r["path"] == f"/cds-services/{SIGN}"]
    assert len(hooks) == len(names) + 2
    assert all(r["request_id"] and isinstance(r["latency_ms"], float) and r["status"] for r in hooks)
    assert any(r.get("rule_ids") for r in hooks)
    assert any(r["status"] == 400 and r.get("error") == "InvalidRequest" for r in hooks)


def test_request_id_is_echoed_and_sent_to_the_fhir_server(client: TestClient, knowledge: Any) -> None:
    with respx.mock(assert_all_called=False) as router:
        routes = fhir_routes(router, knowledge, "clean-base-order", BASE)
        response = client.post(
            f"/cds-services/{SIGN}",
            json=fallback_request(knowledge, "clean-base-order", BASE),
            headers={"X-Request-ID": "ehr-req-42"},
        )
    assert response.headers["x-request-id"] == "ehr-req-42"
    assert routes["patient"].calls.last.request.headers["X-Request-ID"] == "ehr-req-42"
    unsafe = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces\n"})
    assert unsafe.headers["x-request-id"] != "bad id with spaces\n"
