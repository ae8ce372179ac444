"""POST /cds-services/{id} with full prefetch: cards for palbociclib orders only, valid 2.0 responses."""

from __future__ import annotations

from fastapi.testclient import TestClient

from cds_service.knowledge import Knowledge
from tests.support import SELECT, SIGN, assert_valid, hook_request, rule_ids


def test_clean_order_gets_no_warning_or_critical_card(client: TestClient, knowledge: Knowledge) -> None:
    response = client.post(f"/cds-services/{SIGN}", json=hook_request(knowledge, "clean-base-order"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert_valid(body, "ServiceResponse")
    assert rule_ids(body, at_least="warning") == set()
    assert response.headers["X-Knowledge-Version"] == knowledge.version


def test_request_itself_is_valid_cds_hooks(knowledge: Knowledge) -> None:
    assert_valid(hook_request(knowledge, "clean-base-order"), "ServiceRequest")
    assert_valid(hook_request(knowledge, "clean-base-order", SELECT), "ServiceRequest")


def test_non_palbociclib_order_gets_empty_cards_without_reading_data(client: TestClient, knowledge: Knowledge) -> None:
    request = hook_request(knowledge, "no-palbociclib-order", with_prefetch=False)
    request["fhirServer"] = "https://unreachable.invalid/fhir"
    response = client.post(f"/cds-services/{SIGN}", json=request)
    assert response.status_code == 200
    assert response.json()["cards"] == []
    assert_valid(response.json(), "ServiceResponse")


def test_cards_carry_uuid_summary_topic_and_sorted_indicators(client: TestClient, knowledge: Knowledge) -> None:
    request = hook_request(knowledge, "receptor-er-pr-negative-icd")
    # Add a second problem so there is more than one card to sort.
    request["prefetch"]["medicationRequests"] = None
    request["prefetch"]["medicationStatements"] = None
    body = client.post(f"/cds-services/{SIGN}", json=request).json()
    assert_valid(body, "ServiceResponse")
    cards = body["cards"]
    assert [c["indicator"] for c in cards] == sorted(
        (c["indicator"] for c in cards), key=["critical", "warning", "info"].index
    )
    assert ("receptor-er-negative", "critical") in rule_ids(body)
    assert ("partner-missing", "warning") in rule_ids(body)
    for card in cards:
        assert card["uuid"]
        assert len(card["summary"]) < 140
        assert card["source"]["topic"]["system"] == knowledge.catalogue.common.topic_system
        assert card["source"]["url"].startswith("https://")
    uuids = [c["uuid"] for c in cards] + [s["uuid"] for c in cards for s in c.get("suggestions", [])]
    assert len(uuids) == len(set(uuids))


def test_critical_receptor_card_offers_to_cancel_the_draft(client: TestClient, knowledge: Knowledge) -> None:
    request = hook_request(knowledge, "receptor-her2-positive-icd")
    body = client.post(f"/cds-services/{SIGN}", json=request).json()
    card = next(c for c in body["cards"] if c["source"]["topic"]["code"] == "receptor-her2-positive")
    draft = request["context"]["draftOrders"]["entry"][0]["resource"]
    assert card["selectionBehavior"] == "at-most-one"
    action = card["suggestions"][0]["actions"][0]
    assert action == {
        "type": "delete",
        "description": action["description"],
        "resourceId": f"MedicationRequest/{draft['id']}",
    }
    assert {r["code"] for r in card["overrideReasons"]}
    assert all(r["display"] for r in card["overrideReasons"])
    assert "Z17.31" in card["detail"]


def test_order_select_checks_only_the_selected_orders(client: TestClient, knowledge: Knowledge) -> None:
    request = hook_request(knowledge, "partner-missing", SELECT)
    palbociclib = request["context"]["selections"][0]
    other = {
        "resourceType": "MedicationRequest",
        "id": "other-order",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": f"Patient/{request['context']['patientId']}"},
        "medicationCodeableConcept": {"text": "ondansetron 8 mg tablet"},
    }
    request["context"]["draftOrders"]["entry"].append({"resource": other})

    request["context"]["selections"] = ["MedicationRequest/other-order"]
    body = client.post(f"/cds-services/{SELECT}", json=request).json()
    assert body["cards"] == []

    request["context"]["selections"] = [palbociclib]
    body = client.post(f"/cds-services/{SELECT}", json=request).json()
    assert_valid(body, "ServiceResponse")
    assert ("partner-missing", "warning") in rule_ids(body)


def test_partner_missing_suggests_valid_fhir_orders(client: TestClient, knowledge: Knowledge) -> None:
    request = hook_request(knowledge, "partner-missing")
    request["context"]["encounterId"] = "enc-1"
    body = client.post(f"/cds-services/{SIGN}", json=request).json()
    card = next(c for c in body["cards"] if c["source"]["topic"]["code"] == "partner-missing")
    from cds_service.fhir.models import validate_resource

    created = [a["resource"] for s in card["suggestions"] for a in s["actions"]]
    assert {r["medicationCodeableConcept"]["coding"][0]["code"] for r in created} == {"72965", "282357"}
    for resource in created:
        validate_resource(resource)
        assert resource["subject"] == {"reference": f"Patient/{request['context']['patientId']}"}
        assert resource["requester"] == {"reference": request["context"]["userId"]}
        assert resource["encounter"] == {"reference": "Encounter/enc-1"}
        assert resource["status"] == "draft"
        assert resource["authoredOn"] == "2026-11-20"


def test_another_patients_records_are_ignored(client: TestClient, knowledge: Knowledge) -> None:
    """A FHIR server that ignores a search parameter may return other patients' records: they must not count."""
    request = hook_request(knowledge, "clean-base-order")
    stranger = {
        "resourceType": "Condition",
        "id": "stranger-her2",
        "subject": {"reference": "Patient/someone-else"},
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "Z17.31"}]},
        "onsetDateTime": "2026-11-19",
    }
    request["prefetch"]["conditions"]["entry"].append({"resource": stranger})
    body = client.post(f"/cds-services/{SIGN}", json=request).json()
    assert rule_ids(body, at_least="warning") == set()
    request["prefetch"]["conditions"]["entry"][-1]["resource"]["subject"]["reference"] = (
        f"Patient/{request['context']['patientId']}"
    )
    body = client.post(f"/cds-services/{SIGN}", json=request).json()
    assert ("receptor-her2-positive", "critical") in rule_ids(body)
