"""Resolving medication requests/statements to ingredients, and finding the palbociclib draft orders."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cds_service.orders import palbociclib_orders
from cds_service.snapshot.medications import index_medications, resolve
from cds_service.terminology import ValueSets
from tests.unit.fhir import (
    IBRANCE_125_TAB_SBD,
    LETROZOLE_IN,
    NDC,
    PALBOCICLIB_125_TAB_SCD,
    PALBOCICLIB_IN,
    RXNORM,
    SNOMED,
    concept,
    med_request,
)

MEDICATION_ID = "med-1"


def _medication(rid: str, code: str | None = None, *, system: str = RXNORM, **extra: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Medication", "id": rid}
    if code is not None:
        resource["code"] = concept(system, code)
    resource.update(extra)
    return resource


# ---------------------------------------------------------------------------------------------- CodeableConcept
@pytest.mark.parametrize(
    ("system", "code", "ingredients", "matched_by", "strength"),
    [
        (RXNORM, PALBOCICLIB_125_TAB_SCD, {"palbociclib"}, "product", 125.0),  # SCD
        (RXNORM, IBRANCE_125_TAB_SBD, {"palbociclib"}, "product", 125.0),  # SBD
        ("urn:oid:2.16.840.1.113883.6.88", "1601380", {"palbociclib"}, "product", 100.0),
        (RXNORM, PALBOCICLIB_IN, {"palbociclib"}, "ingredient", None),  # IN
        (SNOMED, "715958001", {"palbociclib"}, "ingredient", None),
        (NDC, "0069-0688-01", {"palbociclib"}, "product", 125.0),  # package NDC of a listed product
        (NDC, "00069028407", {"palbociclib"}, "product", 75.0),
        (RXNORM, "597730", {"lopinavir", "ritonavir"}, "product", None),  # combination SCD
        (RXNORM, "2587899", {"nirmatrelvir", "ritonavir"}, "product", None),  # combination pack
        (NDC, "0069-1085-30", {"nirmatrelvir", "ritonavir"}, "product", None),
        (RXNORM, "1923054", {"ribociclib", "letrozole"}, "product", None),
    ],
)
def test_codeable_concept_codes(
    vs: ValueSets, system: str, code: str, ingredients: set[str], matched_by: str, strength: float | None
) -> None:
    resolved = resolve(med_request("r1", code, system=system), vs, {})
    assert resolved is not None
    assert resolved.ingredients == frozenset(ingredients)
    assert resolved.matched_by == matched_by
    if matched_by == "product":
        assert resolved.product is not None
        assert resolved.product.strength_mg == strength
    else:
        assert resolved.product is None


def test_product_and_ingredient_codes_together(vs: ValueSets) -> None:
    request = med_request("r1")
    request["medicationCodeableConcept"] = {
        "coding": [
            {"system": RXNORM, "code": PALBOCICLIB_IN},
            {"system": RXNORM, "code": PALBOCICLIB_125_TAB_SCD},
            {"system": RXNORM, "code": "99999999"},
        ],
        "text": "Ibrance 125 mg tablet",
    }
    resolved = resolve(request, vs, {})
    assert resolved is not None
    assert resolved.ingredients == {"palbociclib"}
    assert resolved.matched_by == "product"
    assert resolved.product is not None
    assert resolved.product.code == PALBOCICLIB_125_TAB_SCD
    assert resolved.text == "Ibrance 125 mg tablet"


def test_codes_lead_over_text(vs: ValueSets) -> None:
    resolved = resolve(med_request("r1", LETROZOLE_IN, text="palbociclib (mis-typed)"), vs, {})
    assert resolved is not None
    assert resolved.ingredients == {"letrozole"}
    assert resolved.matched_by == "ingredient"


def test_text_is_coding_display_when_no_text(vs: ValueSets) -> None:
    request = med_request("r1")
    request["medicationCodeableConcept"] = concept(RXNORM, PALBOCICLIB_125_TAB_SCD, "palbociclib 125 MG Oral Tablet")
    resolved = resolve(request, vs, {})
    assert resolved is not None
    assert resolved.text == "palbociclib 125 MG Oral Tablet"


# ---------------------------------------------------------------------------------------------- text fallback
@pytest.mark.parametrize(
    ("medication", "expected"),
    [
        ({"medicationCodeableConcept": {"text": "IBRANCE 125 mg"}}, {"palbociclib"}),
        ({"medicationCodeableConcept": concept(RXNORM, "99999999", text="Ibrance 125 mg tabs")}, {"palbociclib"}),
        ({"medicationCodeableConcept": concept("http://local/formulary", "X1", "letrozole 2.5mg")}, {"letrozole"}),
        ({"medicationReference": {"display": "Femara 2.5 mg"}}, {"letrozole"}),
        ({"medicationReference": {"reference": "Medication/unknown", "display": "palbociclib"}}, {"palbociclib"}),
        ({"medication": {"concept": {"text": "palbociclib 100 mg"}}}, {"palbociclib"}),
    ],
)
def test_text_fallback(vs: ValueSets, medication: dict[str, Any], expected: set[str]) -> None:
    resolved = resolve({"resourceType": "MedicationRequest", **medication}, vs, {})
    assert resolved is not None
    assert resolved.ingredients == frozenset(expected)
    assert resolved.matched_by == "text"
    assert resolved.product is None


@pytest.mark.parametrize(
    "medication",
    [
        {"medicationCodeableConcept": concept(RXNORM, "99999999", text="acetaminophen 500 mg")},
        {"medicationCodeableConcept": {"text": "ibrances"}},
        {"medicationCodeableConcept": {}},
        {"medicationReference": {"reference": "Medication/missing"}},
        {"medicationReference": {"reference": "#missing"}},
        {"medicationReference": "Medication/x"},
        {"medication": "junk"},
        {},
    ],
)
def test_unknown_medicine_gives_none(vs: ValueSets, medication: dict[str, Any]) -> None:
    assert resolve({"resourceType": "MedicationRequest", **medication}, vs, {}) is None


# ---------------------------------------------------------------------------------------------- references
def test_contained_medication(vs: ValueSets) -> None:
    request = med_request(
        "r1",
        medicationReference={"reference": "#m"},
        contained=[
            {"resourceType": "Patient", "id": "m"},  # same id, wrong type: skipped
            _medication("m", PALBOCICLIB_125_TAB_SCD),
        ],
    )
    resolved = resolve(request, vs, {})
    assert resolved is not None
    assert resolved.ingredients == {"palbociclib"}
    assert resolved.matched_by == "product"


def test_contained_reference_does_not_reach_the_index(vs: ValueSets) -> None:
    request = med_request("r1", medicationReference={"reference": "#m"})
    assert resolve(request, vs, {"Medication/m": _medication("m", PALBOCICLIB_IN)}) is None


@pytest.mark.parametrize(
    "reference",
    [
        f"Medication/{MEDICATION_ID}",
        MEDICATION_ID,
        f"https://ehr.example.org/fhir/Medication/{MEDICATION_ID}",
        f"Medication/{MEDICATION_ID}/_history/3",
        f"https://ehr.example.org/fhir/Medication/{MEDICATION_ID}/_history/3",
    ],
)
def test_medication_in_the_index(vs: ValueSets, reference: str) -> None:
    index = index_medications([_medication(MEDICATION_ID, IBRANCE_125_TAB_SBD)])
    resolved = resolve(med_request("r1", medicationReference={"reference": reference}), vs, index)
    assert resolved is not None
    assert resolved.ingredients == {"palbociclib"}
    assert resolved.product is not None
    assert resolved.product.code == IBRANCE_125_TAB_SBD


def test_reference_to_another_resource_type_is_not_a_medication(vs: ValueSets) -> None:
    index = {"Medication/x": _medication("x", PALBOCICLIB_IN)}
    assert resolve(med_request("r1", medicationReference={"reference": "Substance/x"}), vs, index) is None


def test_medication_ingredient_item_codeable_concepts(vs: ValueSets) -> None:
    medication = _medication(
        MEDICATION_ID,
        ingredient=[
            {"itemCodeableConcept": concept(RXNORM, PALBOCICLIB_IN)},
            {"itemCodeableConcept": concept(RXNORM, LETROZOLE_IN)},
            "junk",
        ],
    )
    index = {f"Medication/{MEDICATION_ID}": medication}
    resolved = resolve(med_request("r1", medicationReference={"reference": f"Medication/{MEDICATION_ID}"}), vs, index)
    assert resolved is not None
    assert resolved.ingredients == {"palbociclib", "letrozole"}
    assert resolved.matched_by == "ingredient"


def test_medication_ingredient_item_reference_to_its_own_contained(vs: ValueSets) -> None:
    medication = _medication(
        MEDICATION_ID,
        contained=[_medication("sub", PALBOCICLIB_IN)],
        ingredient=[{"itemReference": {"reference": "#sub"}}],
    )
    index = {f"Medication/{MEDICATION_ID}": medication}
    resolved = resolve(med_request("r1", medicationReference={"reference": f"Medication/{MEDICATION_ID}"}), vs, index)
    assert resolved is not None
    assert resolved.ingredients == {"palbociclib"}


def test_medication_ingredient_item_reference_into_the_index(vs: ValueSets) -> None:
    index = {
        "Medication/combo": _medication("combo", ingredient=[{"itemReference": {"reference": "Medication/part"}}]),
        "Medication/part": _medication("part", LETROZOLE_IN),
    }
    resolved = resolve(med_request("r1", medicationReference={"reference": "Medication/combo"}), vs, index)
    assert resolved is not None
    assert resolved.ingredients == {"letrozole"}


def test_medication_code_text_is_used_when_uncoded(vs: ValueSets) -> None:
    index = {"Medication/m": {"resourceType": "Medication", "id": "m", "code": {"text": "IBRANCE capsules"}}}
    resolved = resolve(med_request("r1", medicationReference={"reference": "Medication/m"}), vs, index)
    assert resolved is not None
    assert resolved.matched_by == "text"
    assert resolved.text == "IBRANCE capsules"


def test_reference_display_and_medication_text_are_joined(vs: ValueSets) -> None:
    index = {"Medication/m": _medication("m", code=None) | {"code": concept(RXNORM, PALBOCICLIB_IN, text="Ibrance")}}
    request = med_request("r1", medicationReference={"reference": "Medication/m", "display": "palbociclib order"})
    resolved = resolve(request, vs, index)
    assert resolved is not None
    assert resolved.text == "palbociclib order; Ibrance"


# ---------------------------------------------------------------------------------------------- R5 shape
def test_r5_medication_concept(vs: ValueSets) -> None:
    resource = {
        "resourceType": "MedicationRequest",
        "medication": {"concept": concept(RXNORM, PALBOCICLIB_125_TAB_SCD)},
    }
    resolved = resolve(resource, vs, {})
    assert resolved is not None
    assert resolved.ingredients == {"palbociclib"}
    assert resolved.matched_by == "product"


def test_r5_medication_reference(vs: ValueSets) -> None:
    resource = {"resourceType": "MedicationRequest", "medication": {"reference": {"reference": "Medication/m"}}}
    resolved = resolve(resource, vs, {"Medication/m": _medication("m", LETROZOLE_IN)})
    assert resolved is not None
    assert resolved.ingredients == {"letrozole"}


def test_r4_element_leads_over_r5_element(vs: ValueSets) -> None:
    resource = {
        "resourceType": "MedicationRequest",
        "medicationCodeableConcept": concept(RXNORM, LETROZOLE_IN),
        "medication": {"concept": concept(RXNORM, PALBOCICLIB_IN)},
    }
    resolved = resolve(resource, vs, {})
    assert resolved is not None
    assert resolved.ingredients == {"letrozole"}


def test_index_medications_keeps_only_identified_medications() -> None:
    resources = [
        _medication("a", PALBOCICLIB_IN),
        {"resourceType": "Medication"},
        {"resourceType": "Medication", "id": "   "},
        {"resourceType": "MedicationRequest", "id": "b"},
    ]
    assert list(index_medications(resources)) == ["Medication/a"]


# ---------------------------------------------------------------------------------------------- palbociclib_orders
def _drafts() -> list[dict[str, Any]]:
    return [
        med_request("palbo", PALBOCICLIB_125_TAB_SCD, status="draft", authored="2026-11-20"),
        med_request("letro", LETROZOLE_IN, status="draft"),
        med_request("palbo-text", text="IBRANCE 100 mg", status="draft"),
        {"resourceType": "ServiceRequest", "id": "sr", "code": concept(RXNORM, PALBOCICLIB_IN)},
        {
            "resourceType": "MedicationStatement",
            "id": "ms",
            "medicationCodeableConcept": concept(RXNORM, PALBOCICLIB_IN),
        },
        med_request(None, PALBOCICLIB_IN, status="draft"),
    ]


def test_all_drafts_without_selections(vs: ValueSets) -> None:
    found = palbociclib_orders(_drafts(), None, vs, {})
    assert [order.resource_id for _, order in found] == ["palbo", "palbo-text", None]
    first_resource, first = found[0]
    assert first_resource["id"] == "palbo"
    assert first.status == "draft"
    assert first.matched_by == "product"
    assert first.product is not None
    assert first.product.strength_mg == 125.0
    assert first.reference == "MedicationRequest/palbo"
    assert first.evidence.reference == "MedicationRequest/palbo"
    assert first.evidence.date == datetime(2026, 11, 20, tzinfo=UTC)
    assert first.evidence.description.endswith("(draft order)")
    assert found[1][1].matched_by == "text"
    assert found[2][1].reference is None


@pytest.mark.parametrize(
    ("selections", "expected"),
    [
        (["MedicationRequest/palbo"], ["palbo"]),
        (["palbo"], ["palbo"]),
        (["MedicationRequest/palbo", "palbo-text"], ["palbo", "palbo-text"]),
        (["MedicationRequest/letro"], []),  # selected but not palbociclib
        (["ServiceRequest/sr", "MedicationStatement/ms", "sr", "ms"], []),  # not MedicationRequests
        (["ServiceRequest/palbo"], []),  # wrong type prefix
        (["MedicationRequest/other"], []),
        ([], []),
    ],
)
def test_selections(vs: ValueSets, selections: list[str], expected: list[str]) -> None:
    found = palbociclib_orders(_drafts(), selections, vs, {})
    assert [order.resource_id for _, order in found] == expected


def test_order_through_medication_reference(vs: ValueSets) -> None:
    draft = med_request("p", status="draft", medicationReference={"reference": "Medication/ib"})
    index = {"Medication/ib": _medication("ib", IBRANCE_125_TAB_SBD)}
    found = palbociclib_orders([draft], ["MedicationRequest/p"], vs, index)
    assert len(found) == 1
    assert found[0][1].product is not None
    assert found[0][1].product.code == IBRANCE_125_TAB_SBD
    assert palbociclib_orders([draft], ["MedicationRequest/p"], vs, {}) == []


def test_combination_product_containing_palbociclib_is_an_order(vs: ValueSets) -> None:
    draft = med_request("combo", status="draft")
    draft["medicationCodeableConcept"] = {
        "coding": [{"system": RXNORM, "code": PALBOCICLIB_IN}, {"system": RXNORM, "code": LETROZOLE_IN}]
    }
    found = palbociclib_orders([draft], None, vs, {})
    assert len(found) == 1
    assert found[0][1].matched_by == "ingredient"
