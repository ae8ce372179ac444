"""Malformed input gets a 400 OperationOutcome saying what is wrong; unknown services 404; never a 500."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cds_service.knowledge import Knowledge
from tests.support import SELECT, SIGN, hook_request


def _outcome(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["severity"] == "error"
    return " ".join(issue["diagnostics"] for issue in body["issue"])


@pytest.fixture
def base_request(knowledge: Knowledge) -> dict[str, Any]:
    return hook_request(knowledge, "clean-base-order")


def test_malformed_json(client: TestClient) -> None:
    text = _outcome(
        client.post(f"/cds-services/{SIGN}", content=b"{not json", headers={"Content-Type": "application/json"}), 400
    )
    assert "not valid JSON" in text


def test_empty_body(client: TestClient) -> None:
    assert "empty" in _outcome(client.post(f"/cds-services/{SIGN}", content=b""), 400)


def test_body_not_an_object(client: TestClient) -> None:
    assert "JSON object" in _outcome(client.post(f"/cds-services/{SIGN}", json=[1, 2]), 400)


def _without(request: dict[str, Any], *path: str) -> dict[str, Any]:
    changed = copy.deepcopy(request)
    target = changed
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]
    return changed


@pytest.mark.parametrize(
    ("path", "needle"),
    [
        (("hook",), "hook"),
        (("hookInstance",), "hookInstance"),
        (("context",), "context"),
        (("context", "userId"), "context.userId"),
        (("context", "patientId"), "context.patientId"),
        (("context", "draftOrders"), "context.draftOrders"),
    ],
    ids=lambda v: ".".join(v) if isinstance(v, tuple) else v,
)
def test_missing_required_fields(
    client: TestClient, base_request: dict[str, Any], path: tuple[str, ...], needle: str
) -> None:
    text = _outcome(client.post(f"/cds-services/{SIGN}", json=_without(base_request, *path)), 400)
    assert needle in text


def test_wrong_hook_for_the_service(client: TestClient, base_request: dict[str, Any]) -> None:
    base_request["hook"] = "patient-view"
    text = _outcome(client.post(f"/cds-services/{SIGN}", json=base_request), 400)
    assert "does not match" in text
    assert "order-sign" in text


def test_order_select_needs_selections(client: TestClient, base_request: dict[str, Any]) -> None:
    base_request["hook"] = "order-select"
    assert "selections" in _outcome(client.post(f"/cds-services/{SELECT}", json=base_request), 400)


def test_selection_not_in_draft_orders(client: TestClient, base_request: dict[str, Any]) -> None:
    base_request["hook"] = "order-select"
    base_request["context"]["selections"] = ["MedicationRequest/not-there"]
    assert "not found in draftOrders" in _outcome(client.post(f"/cds-services/{SELECT}", json=base_request), 400)


def test_draft_orders_must_be_a_bundle(client: TestClient, base_request: dict[str, Any]) -> None:
    base_request["context"]["draftOrders"] = {"resourceType": "MedicationRequest"}
    assert "draftOrders" in _outcome(client.post(f"/cds-services/{SIGN}", json=base_request), 400)


def test_draft_order_entry_without_resource(client: TestClient, base_request: dict[str, Any]) -> None:
    base_request["context"]["draftOrders"]["entry"].append({"fullUrl": "x"})
    assert "resourceType" in _outcome(client.post(f"/cds-services/{SIGN}", json=base_request), 400)


def test_authorization_without_fhir_server(client: TestClient, base_request: dict[str, Any]) -> None:
    base_request["fhirAuthorization"] = {
        "access_token": "t",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "cds",
    }
    assert "fhirServer" in _outcome(client.post(f"/cds-services/{SIGN}", json=base_request), 400)


def test_authorization_token_type_must_be_bearer(client: TestClient, base_request: dict[str, Any]) -> None:
    base_request["fhirServer"] = "https://ehr.example.org/fhir"
    base_request["fhirAuthorization"] = {
        "access_token": "t",
        "token_type": "MAC",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "cds",
    }
    assert "token_type" in _outcome(client.post(f"/cds-services/{SIGN}", json=base_request), 400)


def test_prefetch_value_must_be_an_object_or_null(client: TestClient, base_request: dict[str, Any]) -> None:
    base_request["prefetch"]["patient"] = "Patient/123"
    assert "prefetch.patient" in _outcome(client.post(f"/cds-services/{SIGN}", json=base_request), 400)


def test_wrong_types(client: TestClient, base_request: dict[str, Any]) -> None:
    base_request["context"]["patientId"] = {"id": 1}
    assert "context.patientId" in _outcome(client.post(f"/cds-services/{SIGN}", json=base_request), 400)


def test_unknown_service(client: TestClient, base_request: dict[str, Any]) -> None:
    assert "no CDS service" in _outcome(client.post("/cds-services/unknown", json=base_request), 404)
    _outcome(client.post("/cds-services/unknown/feedback", json={"feedback": []}), 404)


def test_unknown_route_is_an_operation_outcome(client: TestClient) -> None:
    _outcome(client.get("/nothing-here"), 404)


def test_wrong_method(client: TestClient) -> None:
    response = client.get(f"/cds-services/{SIGN}")
    assert response.status_code == 405
    assert response.json()["resourceType"] == "OperationOutcome"
