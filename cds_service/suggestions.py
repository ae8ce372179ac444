"""Suggested changes to the draft palbociclib order: a new daily dose and the labelled schedule.

The changed order is the draft as the EHR sent it with its dose, product and timing replaced, so an EHR
can apply it as an ``update`` in one click. A dose change moves the order to the generic product of that
strength in the same form when the value sets know it, else to the ingredient with the strength in text.
"""

from __future__ import annotations

import copy
from typing import Any

from cds_service.snapshot.model import Product
from cds_service.terminology import SYSTEMS, ValueSets

PALBOCICLIB_RXCUI = "1601374"
UCUM = "http://unitsofmeasure.org"

EXAMPLE_DRAFT: dict[str, Any] = {
    "resourceType": "MedicationRequest",
    "id": "example-draft",
    "status": "draft",
    "intent": "order",
    "subject": {"reference": "Patient/example"},
    "medicationCodeableConcept": {
        "coding": [{"system": SYSTEMS["rxnorm"], "code": "2284105", "display": "palbociclib 125 MG Oral Tablet"}]
    },
    "dosageInstruction": [
        {"text": "125 mg by mouth twice daily", "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}}}
    ],
}
"""A draft used to check, at start-up, that every update the catalogue describes yields valid FHIR."""


def _medication(dose_mg: float, form: str | None, vs: ValueSets) -> dict[str, Any]:
    product = vs.product_with_strength("palbociclib", dose_mg, form)
    shown = f"palbociclib {dose_mg:g} mg {form or 'oral'}"
    if product is not None:
        return {"coding": [{"system": product.system, "code": product.code, "display": product.display}], "text": shown}
    return {
        "coding": [{"system": SYSTEMS["rxnorm"], "code": PALBOCICLIB_RXCUI, "display": "palbociclib"}],
        "text": shown,
    }


def labelled_dosage(dose_mg: float, form: str | None) -> dict[str, Any]:
    """Once daily on days 1-21 of a 28-day cycle (IBRANCE prescribing information §2.1)."""
    food = " with food" if form == "capsule" else ""
    dosage: dict[str, Any] = {
        "text": f"{dose_mg:g} mg by mouth once daily{food} on days 1-21 of each 28-day cycle",
        "timing": {
            "repeat": {
                "frequency": 1,
                "period": 1,
                "periodUnit": "d",
                "boundsDuration": {"value": 21, "unit": "day", "system": UCUM, "code": "d"},
            }
        },
        "route": {"coding": [{"system": SYSTEMS["snomed"], "code": "26643006", "display": "Oral route"}]},
        "doseAndRate": [{"doseQuantity": {"value": dose_mg, "unit": "mg", "system": UCUM, "code": "mg"}}],
    }
    if food:
        dosage["additionalInstruction"] = [{"text": "Take with food"}]
    return dosage


def order_with_dose(
    draft: dict[str, Any],
    dose_mg: float | None,
    labelled_schedule: bool,
    current: Product | None,
    current_daily_mg: float | None,
    vs: ValueSets,
) -> dict[str, Any]:
    """The draft with a new daily dose and/or the labelled schedule."""
    updated = copy.deepcopy(draft)
    form = current.form if current else None
    new_dose = dose_mg if dose_mg is not None else (current_daily_mg or (current.strength_mg if current else None))
    if new_dose is None:
        new_dose = 125.0
    if dose_mg is not None:
        updated.pop("medicationReference", None)
        updated["medicationCodeableConcept"] = _medication(new_dose, form, vs)
    updated["dosageInstruction"] = [labelled_dosage(new_dose, form)]
    if labelled_schedule or dose_mg is not None:
        dispense = updated.setdefault("dispenseRequest", {})
        if isinstance(dispense, dict):
            dispense["quantity"] = {
                "value": 21,
                "unit": form or "unit",
                "system": UCUM,
                "code": "{capsule}" if form == "capsule" else "{tablet}",
            }
            dispense["expectedSupplyDuration"] = {"value": 28, "unit": "day", "system": UCUM, "code": "d"}
    return updated
