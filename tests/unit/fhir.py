"""Small builders of FHIR R4 JSON for the unit tests."""

from __future__ import annotations

from typing import Any

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
NDC = "http://hl7.org/fhir/sid/ndc"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
HGNC = "http://www.genenames.org"
V3_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"

# RxNorm codes used across the tests (all listed in cds_service/valuesets).
PALBOCICLIB_IN = "1601374"
PALBOCICLIB_125_TAB_SCD = "2284105"
PALBOCICLIB_100_CAP_SCD = "1601380"
IBRANCE_125_TAB_SBD = "2284106"
LETROZOLE_IN = "72965"
LETROZOLE_25_TAB_SCD = "200064"
TAMOXIFEN_10_TAB_SCD = "198240"
ANASTROZOLE_IN = "84857"


def concept(system: str, code: str, display: str | None = None, text: str | None = None) -> dict[str, Any]:
    coding: dict[str, Any] = {"system": system, "code": code}
    if display is not None:
        coding["display"] = display
    out: dict[str, Any] = {"coding": [coding]}
    if text is not None:
        out["text"] = text
    return out


def med_request(
    rid: str | None,
    code: str | None = None,
    *,
    status: str = "active",
    system: str = RXNORM,
    text: str | None = None,
    authored: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "MedicationRequest", "status": status, "intent": "order"}
    if rid is not None:
        resource["id"] = rid
    if code is not None:
        resource["medicationCodeableConcept"] = concept(system, code, text=text)
    elif text is not None:
        resource["medicationCodeableConcept"] = {"text": text}
    if authored is not None:
        resource["authoredOn"] = authored
    resource.update(extra)
    return resource


def med_statement(rid: str, code: str, *, status: str = "active", system: str = RXNORM) -> dict[str, Any]:
    return {
        "resourceType": "MedicationStatement",
        "id": rid,
        "status": status,
        "medicationCodeableConcept": concept(system, code),
    }


def observation(
    rid: str | None,
    loinc: str,
    *,
    value: float | None = None,
    unit: str | None = None,
    ucum_code: str | None = None,
    when: str | None = "2026-11-01",
    status: str = "final",
    **extra: Any,
) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Observation", "status": status, "code": concept(LOINC, loinc)}
    if rid is not None:
        resource["id"] = rid
    if when is not None:
        resource["effectiveDateTime"] = when
    if value is not None:
        quantity: dict[str, Any] = {"value": value}
        if unit is not None:
            quantity["unit"] = unit
        if ucum_code is not None:
            quantity["system"] = UCUM
            quantity["code"] = ucum_code
        resource["valueQuantity"] = quantity
    resource.update(extra)
    return resource


def condition(rid: str, system: str, code: str, *, onset: str | None = None, **extra: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Condition", "id": rid, "code": concept(system, code)}
    if onset is not None:
        resource["onsetDateTime"] = onset
    resource.update(extra)
    return resource
