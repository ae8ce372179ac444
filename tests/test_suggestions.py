"""Suggested updates of the draft order: new dose, matching product, labelled 21/7 schedule, valid FHIR."""

from __future__ import annotations

import pytest

from cds_service.catalogue import ActionEntry
from cds_service.fhir.models import validate_resource
from cds_service.suggestions import EXAMPLE_DRAFT, order_with_dose
from cds_service.terminology import load_valuesets


def test_dose_change_moves_to_the_product_of_that_strength() -> None:
    vs = load_valuesets()
    current = vs.product("http://www.nlm.nih.gov/research/umls/rxnorm", "2284105")
    updated = order_with_dose(EXAMPLE_DRAFT, 75.0, False, current, 250.0, vs)
    validate_resource(updated)
    assert updated["medicationCodeableConcept"]["coding"][0]["code"] == "2284107"
    dosage = updated["dosageInstruction"][0]
    assert dosage["doseAndRate"][0]["doseQuantity"] == {
        "value": 75.0,
        "unit": "mg",
        "system": "http://unitsofmeasure.org",
        "code": "mg",
    }
    assert dosage["timing"]["repeat"]["frequency"] == 1
    assert dosage["timing"]["repeat"]["boundsDuration"]["value"] == 21
    assert updated["dispenseRequest"]["expectedSupplyDuration"]["value"] == 28
    assert updated["id"] == EXAMPLE_DRAFT["id"]
    assert EXAMPLE_DRAFT["dosageInstruction"][0]["timing"]["repeat"]["frequency"] == 2  # not mutated


def test_labelled_schedule_keeps_the_product_and_dose() -> None:
    vs = load_valuesets()
    current = vs.product("http://www.nlm.nih.gov/research/umls/rxnorm", "1601390")  # Ibrance 125 mg capsule
    updated = order_with_dose(EXAMPLE_DRAFT, None, True, current, 125.0, vs)
    validate_resource(updated)
    assert updated["medicationCodeableConcept"] == EXAMPLE_DRAFT["medicationCodeableConcept"]
    dosage = updated["dosageInstruction"][0]
    assert dosage["doseAndRate"][0]["doseQuantity"]["value"] == 125.0
    assert dosage["additionalInstruction"] == [{"text": "Take with food"}]
    assert "days 1-21 of each 28-day cycle" in dosage["text"]


def test_unknown_strength_falls_back_to_the_ingredient() -> None:
    vs = load_valuesets()
    updated = order_with_dose(EXAMPLE_DRAFT, 50.0, False, None, None, vs)
    validate_resource(updated)
    assert updated["medicationCodeableConcept"]["coding"][0]["code"] == "1601374"
    assert updated["medicationCodeableConcept"]["text"] == "palbociclib 50 mg oral"


@pytest.mark.parametrize(
    "fields",
    [
        {"type": "update", "description": "x", "target": "draft-order"},
        {"type": "update", "description": "x", "target": "finding", "dose_mg": 75},
        {"type": "delete", "description": "x"},
        {"type": "create", "description": "x"},
    ],
    ids=["update-without-change", "update-not-draft", "delete-without-target", "create-without-resource"],
)
def test_incomplete_actions_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"action|update"):
        ActionEntry.model_validate(fields)
