"""Observations to ``LabResult``s: concept, canonical value, coded or text result, reference range."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cds_service.snapshot.fhirjson import (
    as_dict,
    as_float,
    as_list,
    as_str,
    codings,
    concept_text,
    evidence,
    first_datetime,
    parse_datetime,
)
from cds_service.snapshot.model import LabResult
from cds_service.snapshot.units import LabUnit, convert
from cds_service.terminology import ValueSets

# Canonical unit per lab concept (clinical brief §6.5); molar masses turn mol/L into mass units.
LAB_UNITS: dict[str, LabUnit] = {
    "anc": LabUnit("count-per-volume", "10*9/L"),
    "wbc": LabUnit("count-per-volume", "10*9/L"),
    "platelets": LabUnit("count-per-volume", "10*9/L"),
    "neutrophils-percent": LabUnit("percent", "%"),
    "bands-percent": LabUnit("percent", "%"),
    "hemoglobin": LabUnit("mass-per-volume", "g/dL", molar_mass=16114.5),
    "albumin": LabUnit("mass-per-volume", "g/dL", molar_mass=66500.0),
    "bilirubin-total": LabUnit("mass-per-volume", "mg/dL", molar_mass=584.66),
    "creatinine": LabUnit("mass-per-volume", "mg/dL", molar_mass=113.12),
    "estradiol": LabUnit("mass-per-volume", "pg/mL", molar_mass=272.38),
    "ast": LabUnit("enzyme-activity", "U/L"),
    "alt": LabUnit("enzyme-activity", "U/L"),
    "fsh": LabUnit("arbitrary-units", "[IU]/L"),
    "lh": LabUnit("arbitrary-units", "[IU]/L"),
    "hcg-serum-quantitative": LabUnit("arbitrary-units", "[IU]/L"),
    "body-temperature": LabUnit("temperature", "Cel"),
    "inr": LabUnit("ratio", "{ratio}"),
}
_EPOCH = datetime(1, 1, 1, tzinfo=UTC)


def newest_first(results: list[LabResult]) -> list[LabResult]:
    """Dated results newest first, then the undated; equal dates keep their order (both sorts are stable)."""
    dated = [lab for lab in results if lab.effective is not None]
    dated.sort(key=_effective, reverse=True)
    return dated + [lab for lab in results if lab.effective is None]


def _effective(lab: LabResult) -> datetime:
    return lab.effective or _EPOCH


def _quantity(value: Any) -> tuple[float | None, str | None, str]:
    """Number, unit to convert from (UCUM code, else the human unit) and the value as received."""
    if not isinstance(value, dict):
        return None, None, ""
    raw = value.get("value")
    number = as_float(raw)
    code, human = _units(value)
    comparator = as_str(value.get("comparator")) or ""
    original = f"{comparator}{raw} {human or code or ''}".strip()
    return number, code or human, original


def _units(quantity: dict[str, Any]) -> tuple[str | None, str | None]:
    """The UCUM code (a code of another system is no unit) and the human-readable unit of a Quantity."""
    system = quantity.get("system")
    ucum = system is None or (isinstance(system, str) and system == "http://unitsofmeasure.org")
    code = as_str(quantity.get("code")) if ucum else None
    return code, as_str(quantity.get("unit"))


def _bound(value: Any, unit_spec: LabUnit, value_unit: str | None) -> float | None:
    """A reference-range bound in canonical units; a bound without a unit has the value's unit."""
    if not isinstance(value, dict):
        return None
    number = as_float(value.get("value"))
    if number is None:
        return None
    code, human = _units(value)
    return convert(number, code or human or value_unit, unit_spec)


def _result_concepts(element: dict[str, Any], vs: ValueSets) -> tuple[frozenset[str], str | None]:
    """Result-value concepts from valueCodeableConcept, valueString and interpretation."""
    found: set[str] = set()
    shown: str | None = None
    concept = element.get("valueCodeableConcept")
    if concept is not None:
        found |= vs.lookup_codings("result_values", codings(concept))
        shown = concept_text(concept) or ", ".join(c.code for c in codings(concept))
        text = as_str(as_dict(concept).get("text"))
        if not found and text:
            hit = vs.text_concept("result_values", text)
            found |= {hit} if hit else set()
    text_value = as_str(element.get("valueString"))
    if text_value is not None:
        shown = text_value
        hit = vs.text_concept("result_values", text_value)
        if hit:
            found.add(hit)
    if not found:
        for interpretation in as_list(element.get("interpretation")):
            found |= vs.lookup_codings("result_values", codings(interpretation))
    return frozenset(found), shown


def _one(
    element: dict[str, Any],
    concept: str,
    resource: dict[str, Any],
    vs: ValueSets,
    when: datetime | None,
    label: str,
) -> LabResult:
    unit_spec = LAB_UNITS.get(concept)
    value: float | None = None
    unit: str | None = None
    raw_unit: str | None = None
    interpretable = True
    original = ""
    if "valueQuantity" in element:
        number, raw_unit, original = _quantity(element["valueQuantity"])
        if number is not None and unit_spec is not None:
            value = convert(number, raw_unit, unit_spec)
            unit = unit_spec.canonical
            interpretable = value is not None
        else:
            interpretable = False
    results, shown = _result_concepts(element, vs)
    value_date = None
    if "valueDateTime" in element or "valuePeriod" in element:
        value_date = parse_datetime(element.get("valueDateTime")) or parse_datetime(
            as_dict(element.get("valuePeriod")).get("start")
        )
    if not original:
        original = shown or (value_date.date().isoformat() if value_date else "")
    low = high = None
    ranges = as_list(element.get("referenceRange"))
    if unit_spec is not None and ranges:
        reference = as_dict(ranges[0])
        low = _bound(reference.get("low"), unit_spec, raw_unit)
        high = _bound(reference.get("high"), unit_spec, raw_unit)
    body_site = resource.get("bodySite")
    return LabResult(
        site=(concept_text(body_site) if body_site else None)
        or as_str(as_dict(resource.get("specimen")).get("display")),
        value_date=value_date,
        concept=concept,
        effective=when,
        value=value,
        unit=unit if value is not None else None,
        interpretable=interpretable,
        original=original,
        result_concepts=results,
        reference_low=low,
        reference_high=high,
        evidence=evidence(resource, when, f"{label or concept}: {original or 'no value'}"),
    )


def lab_results(resource: dict[str, Any], vs: ValueSets) -> list[LabResult]:
    """The results an Observation holds: itself and each coded component (panels, variant reports)."""
    code = resource.get("code")
    codes = codings(code)
    own = vs.lookup_codings("observations", codes)
    components = as_list(resource.get("component"))
    if not own and not components:
        return []  # vital signs, social history ...: nothing a rule reads
    when = first_datetime(resource, "effectiveDateTime", "effectivePeriod", "effectiveInstant", "issued")
    out: list[LabResult] = []
    if own:
        text = as_str(as_dict(code).get("text")) or "; ".join(c.display for c in codes if c.display)
        for concept in sorted(own):
            out.append(_one(resource, concept, resource, vs, when, text))
    for component in components:
        component = as_dict(component)
        found = vs.lookup_codings("observations", codings(component.get("code")))
        for concept in sorted(found - own):
            out.append(_one(component, concept, resource, vs, when, concept_text(component.get("code"))))
    return out
