"""AllergyIntolerance and NutritionOrder entries become substance facts (e.g. grapefruit to avoid)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cds_service.snapshot.build import substance_fact
from cds_service.terminology import ValueSets, load_valuesets

SNOMED = "http://snomed.info/sct"


@pytest.fixture
def vs(tmp_path: Path) -> ValueSets:
    (tmp_path / "medications.yaml").write_text(
        "concepts:\n"
        "  grapefruit:\n"
        "    display: grapefruit\n"
        "    names: [grapefruit]\n"
        "    codes: [{system: snomed, code: '12345', status: verified, source: test}]\n"
    )
    return load_valuesets(tmp_path)


def test_allergy_coded_substance(vs: ValueSets) -> None:
    resource: dict[str, Any] = {
        "resourceType": "AllergyIntolerance",
        "id": "a1",
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "code": {"coding": [{"system": SNOMED, "code": "12345"}]},
    }
    fact = substance_fact(resource, vs)
    assert fact is not None
    assert fact.concepts == {"grapefruit"}
    assert fact.evidence.reference == "AllergyIntolerance/a1"


def test_nutrition_order_text_and_excluded_food(vs: ValueSets) -> None:
    resource: dict[str, Any] = {
        "resourceType": "NutritionOrder",
        "id": "n1",
        "status": "active",
        "excludeFoodModifier": [{"text": "Grapefruit juice"}],
    }
    fact = substance_fact(resource, vs)
    assert fact is not None
    assert fact.concepts == {"grapefruit"}


@pytest.mark.parametrize(
    "resource",
    [
        {"resourceType": "AllergyIntolerance", "code": {"text": "penicillin"}},
        {
            "resourceType": "AllergyIntolerance",
            "clinicalStatus": {"coding": [{"code": "resolved"}]},
            "code": {"text": "grapefruit"},
        },
        {"resourceType": "NutritionOrder", "status": "completed", "oralDiet": {"instruction": "no grapefruit"}},
        {"resourceType": "NutritionOrder", "oralDiet": "garbage", "supplement": [1, None]},
    ],
    ids=["unknown-substance", "resolved-allergy", "completed-diet", "malformed"],
)
def test_no_fact(vs: ValueSets, resource: dict[str, Any]) -> None:
    assert substance_fact(resource, vs) is None
