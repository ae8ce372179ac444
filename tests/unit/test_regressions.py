"""Regression tests for defects found by review: value-set loading, free-text names, unit case,
contained references, R5 shapes, doNotPerform orders and the latest receptor result leading."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cds_service.prefetch.model import KeyOutcome, PatientData
from cds_service.rules import receptors
from cds_service.snapshot.build import build_snapshot
from cds_service.snapshot.labs import LAB_UNITS
from cds_service.snapshot.medications import resolve
from cds_service.snapshot.model import CodedFact, Evidence, LabResult, PalbociclibOrder, PatientSnapshot
from cds_service.snapshot.units import convert
from cds_service.terminology import ValueSetError, ValueSets, load_valuesets
from tests.unit.fhir import LETROZOLE_IN, PALBOCICLIB_IN, RXNORM, concept, med_request

_MEDS = (
    "concepts:\n  palbociclib:\n    names: [palbociclib, ibrance]\n"
    "    codes:\n      - {system: rxnorm, code: '1601374'}\n"
)


# ---------------------------------------------------------------------------------------------- terminology
def test_unquoted_numeric_code_loads(tmp_path: Path) -> None:
    (tmp_path / "conditions.yaml").write_text(
        "concepts:\n  breast-cancer:\n    codes:\n      - {system: snomed, code: 254837009}\n"
    )
    loaded = load_valuesets(tmp_path)
    assert loaded.lookup("conditions", "http://snomed.info/sct", "254837009") == {"breast-cancer"}


@pytest.mark.parametrize(
    "files",
    [
        {"medications.yaml": _MEDS, "medication_products.yaml": "products:\n  - just-a-string\n"},
        {"conditions.yaml": "- a\n- b\n"},
        {"medication_products.yaml": "[1, 2]\n"},
        {
            "medications.yaml": _MEDS,
            "medication_products.yaml": "products:\n  - {system: rxnorm, code: '1', ingredients: [palbociclib], "
            "strength_mg: 125mg}\n",
        },
    ],
)
def test_malformed_files_raise_value_set_error(tmp_path: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ValueSetError):
        load_valuesets(tmp_path)


def test_names_must_be_a_list(tmp_path: Path) -> None:
    (tmp_path / "medications.yaml").write_text("concepts:\n  palbociclib:\n    names: ibrance\n")
    with pytest.raises(ValueSetError):
        load_valuesets(tmp_path)


def test_ethinyl_estradiol_is_not_estradiol(vs: ValueSets) -> None:
    assert vs.medication_names_in("ethinyl estradiol 0.03 mg / levonorgestrel") == {"ethinyl-estradiol"}


# ---------------------------------------------------------------------------------------------- units
@pytest.mark.parametrize("unit", ["g/L", "g/l"])
def test_grams_per_litre_is_not_a_count(unit: str) -> None:
    assert convert(1.2, unit, LAB_UNITS["anc"]) is None


# ---------------------------------------------------------------------------------------------- medications
def test_contained_medication_ingredient_referencing_a_sibling(vs: ValueSets) -> None:
    request = med_request(
        "r1",
        medicationReference={"reference": "#combo"},
        contained=[
            {"resourceType": "Medication", "id": "combo", "ingredient": [{"itemReference": {"reference": "#ing"}}]},
            {"resourceType": "Medication", "id": "ing", "code": concept(RXNORM, PALBOCICLIB_IN)},
        ],
    )
    resolved = resolve(request, vs, {})
    assert resolved is not None
    assert resolved.ingredients == {"palbociclib"}


def test_r5_medication_ingredient_item_concept(vs: ValueSets) -> None:
    request = {"resourceType": "MedicationRequest", "medication": {"reference": {"reference": "Medication/m"}}}
    index = {
        "Medication/m": {
            "resourceType": "Medication",
            "id": "m",
            "ingredient": [{"item": {"concept": concept(RXNORM, PALBOCICLIB_IN)}}],
        }
    }
    resolved = resolve(request, vs, index)
    assert resolved is not None
    assert resolved.ingredients == {"palbociclib"}


# ---------------------------------------------------------------------------------------------- build
def test_do_not_perform_request_is_not_a_current_medication(vs: ValueSets) -> None:
    prohibition = med_request("no-letrozole", LETROZOLE_IN, status="active", doNotPerform=True)
    data = PatientData(
        resources={"medications": (prohibition,)},
        outcomes={"medications": KeyOutcome("medications", "prefetched")},
    )
    snapshot = build_snapshot(
        data,
        patient_id="p",
        draft_orders=[],
        evaluated_orders=[],
        as_of=datetime(2026, 11, 20, tzinfo=UTC),
        vs=vs,
    )
    assert [m for m in snapshot.medications if m.is_current] == []


# ---------------------------------------------------------------------------------------------- receptors
def test_newer_hr_positive_condition_outweighs_older_er_negative_lab() -> None:
    old = datetime(2023, 5, 1, tzinfo=UTC)
    new = datetime(2025, 5, 1, tzinfo=UTC)
    er_negative = LabResult(
        concept="er-status",
        effective=old,
        value=None,
        unit=None,
        interpretable=True,
        original="negative",
        result_concepts=frozenset({"negative"}),
        evidence=Evidence("Observation", "er", old, "ER negative"),
    )
    z17_411 = CodedFact(
        concepts=frozenset({"hr-positive-her2-negative"}),
        codes=(),
        text=None,
        status="active",
        date=new,
        evidence=Evidence("Condition", "z17", new, "HR+ with HER2-"),
    )
    snapshot = PatientSnapshot(
        as_of=datetime(2026, 11, 20, tzinfo=UTC),
        patient_id="p",
        sex="female",
        birth_date=None,
        age_years=None,
        conditions=(z17_411,),
        labs=(er_negative,),
    )
    order = PalbociclibOrder(
        "o", "draft", None, "ingredient", "palbociclib", Evidence("MedicationRequest", "o", None, "")
    )
    findings: list[Any] = receptors.evaluate(snapshot, order, {})
    assert [f.rule_id for f in findings] == []
