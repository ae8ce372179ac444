"""Unit conversion (snapshot/units.py) and Observations to LabResults (snapshot/labs.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from cds_service.snapshot.labs import LAB_UNITS, lab_results, newest_first
from cds_service.snapshot.model import LabResult
from cds_service.snapshot.units import CANONICAL, LabUnit, convert, typographic
from cds_service.terminology import ValueSets
from tests.unit.fhir import HGNC, LOINC, SNOMED, UCUM, V3_INTERPRETATION, concept, observation

ANC = LAB_UNITS["anc"]
COUNT = LabUnit("count-per-volume", "10*9/L")


# ---------------------------------------------------------------------------------------------- counts
@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        # canonical 10*9/L and its equivalents (10*3/uL = 10*3/mm3 = G/L = K/uL ...)
        (1.2, "10*9/L", 1.2),
        (1.3, "10*3/uL", 1.3),
        (1.3, "10*3/mm3", 1.3),
        (1.3, "10^9/L", 1.3),
        (1.3, "x10^9/L", 1.3),
        (1.3, "x10E9/L", 1.3),
        (1.3, "10E9/L", 1.3),
        (1.3, "x10(9)/L", 1.3),
        (1.3, "10^3/uL", 1.3),
        (1.3, "x10^3/uL", 1.3),
        (1.3, "x10E3/uL", 1.3),
        (1.3, "10E3/uL", 1.3),
        (1.3, "x10(3)/uL", 1.3),
        (1.3, "10^3/mm3", 1.3),
        (1.3, "K/uL", 1.3),
        (1.3, "K/mm3", 1.3),
        (1.3, "thou/uL", 1.3),
        (1.3, "thou/mm3", 1.3),
        (1.3, "THOU/uL", 1.3),
        (1.3, "G/L", 1.3),
        (1.3, "Gi/L", 1.3),
        (1.3, "/nL", 1.3),
        (1.3, "10*3/ul", 1.3),
        # cells per microlitre: a thousandth of the canonical unit
        (1300, "/uL", 1.3),
        (1300, "/mm3", 1.3),
        (1300, "{cells}/uL", 1.3),
        (1300, "cells/uL", 1.3),
        (1300, "cells/mm3", 1.3),
        (1300, "/cumm", 1.3),
        # millions per microlitre (red cells): a thousand times the canonical unit
        (4.5, "10*6/uL", 4500.0),
        (4.5, "10*12/L", 4500.0),
        (4.5, "M/uL", 4500.0),
        # non-UCUM spellings ignore case; surrounding blanks are stripped
        (1.3, "k/ul", 1.3),
        (1.3, "X10E3/UL", 1.3),
        (1.3, "Thou/mm3", 1.3),
        (1300, "CELLS/MM3", 1.3),
        (1.3, "  K/uL  ", 1.3),
        (0.0, "10*9/L", 0.0),
        # as printed on reports: micro sign or Greek mu, superscript powers, spaces
        (1300, "/µL", 1.3),  # MICRO SIGN
        (1300, "/μL", 1.3),  # GREEK SMALL LETTER MU
        (1300, "cells/µL", 1.3),
        (1.3, "K/µL", 1.3),
        (1.3, "x10³/µL", 1.3),
        (1.3, "10³/µL", 1.3),
        (1.3, "10⁹/L", 1.3),
        (1.3, "x 10^9/L", 1.3),
        (1.3, "10^9\u00a0/L", 1.3),
        (1.3, "10*3/µl", 1.3),
    ],
)
def test_count_units_convert_to_10e9_per_litre(value: float, unit: str, expected: float) -> None:
    assert convert(value, unit, ANC) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("unit", "plain"),
    [
        ("x10³/µL", "x10^3/uL"),
        ("10¹²/L", "10^12/L"),
        (" µmol/L ", "umol/L"),
        ("μkat/L", "ukat/L"),
        ("K/uL", "K/uL"),
        ("°C", "°C"),
    ],
)
def test_typographic_spellings_become_the_tables_characters(unit: str, plain: str) -> None:
    assert typographic(unit) == plain


def test_printed_units_still_never_guessed() -> None:
    assert convert(1.4, "K/µ", ANC) is None
    assert convert(1.4, "x10³", ANC) is None
    assert convert(1.4, "Giga/L", ANC) is None


@pytest.mark.parametrize("concept_id", ["anc", "wbc", "platelets"])
@pytest.mark.parametrize("unit", ["K", "k", "cells", "10*9", "/L", "mmol/L", "g/dL", "%", "U/L", "bogus", "", "   "])
def test_unknown_count_units_are_never_guessed(concept_id: str, unit: str) -> None:
    assert convert(1.4, unit, LAB_UNITS[concept_id]) is None


@pytest.mark.parametrize("concept_id", ["anc", "wbc", "platelets", "hemoglobin", "fsh", "ast", "body-temperature"])
def test_missing_unit_is_uninterpretable(concept_id: str) -> None:
    assert convert(1.4, None, LAB_UNITS[concept_id]) is None


def test_brief_behaviour_10_anc_in_10e9_per_litre_is_1200_per_mm3() -> None:
    canonical = convert(1.2, "10*9/L", ANC)
    per_mm3 = convert(1200, "/mm3", ANC)
    assert canonical == pytest.approx(1.2)
    assert per_mm3 == pytest.approx(canonical)
    assert canonical is not None
    assert canonical * 1000 == pytest.approx(1200)


@pytest.mark.parametrize(("value", "unit"), [(1300, "/mm3"), (1.3, "K/uL"), (1.3, "10*9/L"), (1300, "{cells}/uL")])
def test_brief_behaviour_11_anc_spellings_agree(value: float, unit: str) -> None:
    assert convert(value, unit, ANC) == pytest.approx(1.3)


def test_count_with_non_canonical_target_scales_both_ways() -> None:
    per_ul = LabUnit("count-per-volume", "/uL")
    assert convert(1.3, "K/uL", per_ul) == pytest.approx(1300)
    assert convert(1300, "/mm3", per_ul) == pytest.approx(1300)


def test_count_with_unknown_canonical_gives_none() -> None:
    assert convert(1.3, "K/uL", LabUnit("count-per-volume", "furlongs")) is None


# ---------------------------------------------------------------------------------------------- mass
@pytest.mark.parametrize(
    ("concept_id", "value", "unit", "expected"),
    [
        # hemoglobin, canonical g/dL (brief behaviour 17: 95 g/L = 9.5 g/dL)
        ("hemoglobin", 95, "g/L", 9.5),
        ("hemoglobin", 9.5, "g/dL", 9.5),
        ("hemoglobin", 9.5, "g/dl", 9.5),
        ("hemoglobin", 9500, "mg/dL", 9.5),
        ("hemoglobin", 6.206, "mmol/L", 10.0),  # 1 g/dL = 0.6206 mmol/L (monomer)
        ("hemoglobin", 1.0, "mmol/L", 1 / 0.6206),
        ("hemoglobin", 6206, "umol/L", 10.0),
        ("hemoglobin", 6206, "µmol/L", 10.0),
        ("hemoglobin", 95, "g/l", 9.5),  # lower-case litre is common in feeds
        # albumin g/dL
        ("albumin", 35, "g/L", 3.5),
        ("albumin", 3.5, "g/dL", 3.5),
        # bilirubin mg/dL <-> umol/L (17.1)
        ("bilirubin-total", 17.1, "umol/L", 1.0),
        ("bilirubin-total", 34.2, "umol/L", 2.0),
        ("bilirubin-total", 1.2, "mg/dL", 1.2),
        ("bilirubin-total", 12, "mg/L", 1.2),
        ("bilirubin-total", 0.0171, "mmol/L", 1.0),
        # creatinine mg/dL <-> umol/L (88.4)
        ("creatinine", 88.4, "umol/L", 1.0),
        ("creatinine", 176.8, "umol/L", 2.0),
        ("creatinine", 0.9, "mg/dL", 0.9),
        # estradiol pg/mL <-> pmol/L (3.671)
        ("estradiol", 3.671, "pmol/L", 1.0),
        ("estradiol", 367.1, "pmol/L", 100.0),
        ("estradiol", 0.3671, "nmol/L", 100.0),
        ("estradiol", 20, "pg/mL", 20.0),
        ("estradiol", 2, "ng/dL", 20.0),
        ("estradiol", 0.02, "ng/mL", 20.0),
    ],
)
def test_mass_units_convert(concept_id: str, value: float, unit: str, expected: float) -> None:
    assert convert(value, unit, LAB_UNITS[concept_id]) == pytest.approx(expected, rel=1e-3)


def test_brief_behaviour_17_hemoglobin_95_g_per_litre_is_9_5_g_per_dl() -> None:
    assert convert(95, "g/L", LAB_UNITS["hemoglobin"]) == pytest.approx(9.5)


@pytest.mark.parametrize("unit", ["mmol/L", "umol/L", "pmol/L"])
def test_molar_units_need_a_molar_mass(unit: str) -> None:
    assert convert(1.0, unit, LabUnit("mass-per-volume", "g/dL")) is None


@pytest.mark.parametrize("unit", ["10*9/L", "U/L", "%", "g", "mEq/L", "mg", "K"])
def test_unknown_mass_units_give_none(unit: str) -> None:
    assert convert(1.0, unit, LAB_UNITS["hemoglobin"]) is None


def test_mass_with_unknown_canonical_gives_none() -> None:
    assert convert(1.0, "g/L", LabUnit("mass-per-volume", "stone/L", molar_mass=1.0)) is None


# ---------------------------------------------------------------------------------------------- enzymes, IU
@pytest.mark.parametrize(
    ("concept_id", "value", "unit", "expected"),
    [
        ("ast", 40, "U/L", 40),
        ("ast", 40, "u/l", 40),
        ("ast", 40, "U/l", 40),
        ("alt", 40, "[IU]/L", 40),
        ("alt", 40, "IU/L", 40),
        ("alt", 1, "ukat/L", 60),
        ("alt", 0.5, "µkat/L", 30),
        ("fsh", 45, "m[IU]/mL", 45),
        ("fsh", 45, "mIU/mL", 45),
        ("fsh", 45, "[IU]/L", 45),
        ("fsh", 45, "IU/L", 45),
        ("fsh", 45000, "m[IU]/L", 45),
        ("fsh", 45000, "mIU/L", 45),
        ("fsh", 0.045, "[IU]/mL", 45),
        ("lh", 0.045, "IU/mL", 45),
        ("hcg-serum-quantitative", 5, "m[IU]/mL", 5),
    ],
)
def test_activity_and_arbitrary_units_convert(concept_id: str, value: float, unit: str, expected: float) -> None:
    assert convert(value, unit, LAB_UNITS[concept_id]) == pytest.approx(expected)


def test_fsh_milli_iu_per_ml_equals_iu_per_litre() -> None:
    fsh = LAB_UNITS["fsh"]
    assert convert(30, "m[IU]/mL", fsh) == pytest.approx(convert(30, "[IU]/L", fsh))


@pytest.mark.parametrize(("concept_id", "unit"), [("ast", "m[IU]/mL"), ("ast", "g/L"), ("fsh", "ukat/L"), ("fsh", "U")])
def test_units_of_another_kind_give_none(concept_id: str, unit: str) -> None:
    assert convert(10, unit, LAB_UNITS[concept_id]) is None


# ---------------------------------------------------------------------------------------------- temperature, ratio, %
@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (37.0, "Cel", 37.0),
        (37.0, "cel", 37.0),
        (37.0, "CEL", 37.0),
        (37.0, "°C", 37.0),
        (37.0, "C", 37.0),
        (37.0, "degC", 37.0),
        (98.6, "[degF]", 37.0),
        (98.6, "°F", 37.0),
        (98.6, "F", 37.0),
        (98.6, "degF", 37.0),
        (100.4, "[degF]", 38.0),
        (32.0, "[degF]", 0.0),
    ],
)
def test_temperature_converts_to_celsius(value: float, unit: str, expected: float) -> None:
    assert convert(value, unit, LAB_UNITS["body-temperature"]) == pytest.approx(expected)


@pytest.mark.parametrize("unit", ["K", "kelvin", "deg", "[degR]"])
def test_unknown_temperature_units_give_none(unit: str) -> None:
    assert convert(310.0, unit, LAB_UNITS["body-temperature"]) is None


@pytest.mark.parametrize("unit", [None, "", "{INR}", "{ratio}", "1", "INR", "ratio", "inr", "  {INR} "])
def test_inr_without_unit_or_with_a_ratio_unit_is_the_value(unit: str | None) -> None:
    assert convert(1.1, unit, LAB_UNITS["inr"]) == pytest.approx(1.1)


@pytest.mark.parametrize("unit", ["s", "sec", "%", "10*9/L"])
def test_inr_with_another_unit_gives_none(unit: str) -> None:
    assert convert(1.1, unit, LAB_UNITS["inr"]) is None


@pytest.mark.parametrize(("unit", "expected"), [("%", 55.0), ("percent", 55.0), ("Percent", 55.0), ("", None)])
def test_percent(unit: str, expected: float | None) -> None:
    result = convert(55.0, unit, LAB_UNITS["neutrophils-percent"])
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)


def test_lab_unit_is_frozen_and_defaults_to_no_molar_mass() -> None:
    unit = LabUnit("percent", "%")
    assert unit.molar_mass is None
    with pytest.raises(AttributeError):
        unit.canonical = "x"  # type: ignore[misc]


def test_canonical_names_match_lab_units() -> None:
    for name, lab in LAB_UNITS.items():
        if lab.kind in CANONICAL and lab.kind != "mass-per-volume":
            assert lab.canonical == CANONICAL[lab.kind], name


@pytest.mark.parametrize("concept_id", sorted(LAB_UNITS))
def test_every_lab_unit_is_an_observation_concept_of_the_same_kind(vs: ValueSets, concept_id: str) -> None:
    found = vs.concept(concept_id, "observations")
    assert found is not None
    assert found.unit_kind == LAB_UNITS[concept_id].kind
    assert convert(1.0, LAB_UNITS[concept_id].canonical, LAB_UNITS[concept_id]) == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------- lab_results
def _one(resource: dict[str, Any], vs: ValueSets) -> LabResult:
    results = lab_results(resource, vs)
    assert len(results) == 1
    return results[0]


@pytest.mark.parametrize(
    ("loinc", "value", "unit", "concept_id", "expected", "canonical"),
    [
        ("751-8", 1.3, "K/uL", "anc", 1.3, "10*9/L"),
        ("26499-4", 1300, "/mm3", "anc", 1.3, "10*9/L"),
        ("753-4", 1.2, "10*9/L", "anc", 1.2, "10*9/L"),
        ("6690-2", 5.5, "x10E3/uL", "wbc", 5.5, "10*9/L"),
        ("777-3", 250, "10*3/uL", "platelets", 250, "10*9/L"),
        ("718-7", 95, "g/L", "hemoglobin", 9.5, "g/dL"),
        ("1975-2", 34.2, "umol/L", "bilirubin-total", 2.0, "mg/dL"),
        ("2160-0", 88.4, "umol/L", "creatinine", 1.0, "mg/dL"),
        ("2243-4", 73.42, "pmol/L", "estradiol", 20.0, "pg/mL"),
        ("15067-2", 40, "m[IU]/mL", "fsh", 40, "[IU]/L"),
        ("1920-8", 1, "ukat/L", "ast", 60, "U/L"),
        ("8310-5", 100.4, "[degF]", "body-temperature", 38.0, "Cel"),
        ("770-8", 55, "%", "neutrophils-percent", 55, "%"),
    ],
)
def test_lab_results_convert_quantities(
    vs: ValueSets, loinc: str, value: float, unit: str, concept_id: str, expected: float, canonical: str
) -> None:
    lab = _one(observation("o1", loinc, value=value, unit=unit), vs)
    assert lab.concept == concept_id
    assert lab.value == pytest.approx(expected, rel=1e-3)
    assert lab.unit == canonical
    assert lab.interpretable is True
    assert lab.original == f"{value} {unit}"
    assert lab.evidence.reference == "Observation/o1"
    assert lab.effective == datetime(2026, 11, 1, tzinfo=UTC)


def test_inr_without_unit_is_interpretable(vs: ValueSets) -> None:
    lab = _one(observation("inr", "6301-6", value=1.1), vs)
    assert lab.value == pytest.approx(1.1)
    assert lab.unit == "{ratio}"
    assert lab.interpretable is True
    assert lab.original == "1.1"


@pytest.mark.parametrize("unit", [None, "K", "cells", "bananas"])
def test_anc_without_a_known_unit_is_uninterpretable(vs: ValueSets, unit: str | None) -> None:
    lab = _one(observation("o1", "751-8", value=1.4, unit=unit), vs)
    assert lab.concept == "anc"
    assert lab.value is None
    assert lab.unit is None
    assert lab.interpretable is False
    assert lab.original.startswith("1.4")


def test_anc_value_given_as_a_string_is_uninterpretable(vs: ValueSets) -> None:
    resource = observation("o1", "751-8")
    resource["valueQuantity"] = {"value": "1.4", "unit": "10*9/L"}
    lab = _one(resource, vs)
    assert lab.value is None
    assert lab.interpretable is False


def test_ucum_code_is_preferred_over_display_unit(vs: ValueSets) -> None:
    lab = _one(observation("o1", "751-8", value=1.3, unit="thousand per microlitre", ucum_code="10*3/uL"), vs)
    assert lab.value == pytest.approx(1.3)
    assert lab.original == "1.3 thousand per microlitre"


def test_code_of_a_non_ucum_system_is_ignored_for_the_unit(vs: ValueSets) -> None:
    resource = observation("o1", "751-8")
    resource["valueQuantity"] = {"value": 1300, "unit": "/mm3", "system": "http://local/units", "code": "XYZ"}
    assert _one(resource, vs).value == pytest.approx(1.3)


def test_unit_taken_from_code_when_unit_is_missing(vs: ValueSets) -> None:
    resource = observation("o1", "751-8")
    resource["valueQuantity"] = {"value": 1300, "system": UCUM, "code": "/uL"}
    lab = _one(resource, vs)
    assert lab.value == pytest.approx(1.3)
    assert lab.original == "1300 /uL"


def test_comparator_is_kept_in_the_original(vs: ValueSets) -> None:
    resource = observation("o1", "751-8")
    resource["valueQuantity"] = {"value": 0.5, "comparator": "<", "unit": "K/uL"}
    lab = _one(resource, vs)
    assert lab.original == "<0.5 K/uL"
    assert lab.value == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("reference_range", "low", "high"),
    [
        ([{"low": {"value": 1500, "unit": "/uL"}, "high": {"value": 8000, "unit": "/uL"}}], 1.5, 8.0),
        ([{"low": {"value": 1.5, "unit": "K/uL"}, "high": {"value": 8, "unit": "K/uL"}}], 1.5, 8.0),
        ([{"low": {"value": 1500}, "high": {"value": 8000}}], 1.5, 8.0),  # the value's own unit
        ([{"low": {"value": 1500, "unit": "/uL"}}], 1.5, None),
        ([{"high": {"value": 8000, "unit": "/uL"}}], None, 8.0),
        ([{"low": {"value": 1500, "unit": "K"}}], None, None),
        ([{"low": {"value": 1500, "unit": "/uL"}}, {"low": {"value": 99, "unit": "/uL"}}], 1.5, None),  # first only
        ([], None, None),
        ([{"text": "normal"}], None, None),
    ],
)
def test_reference_ranges_are_converted(
    vs: ValueSets, reference_range: list[dict[str, Any]], low: float | None, high: float | None
) -> None:
    lab = _one(observation("o1", "751-8", value=1300, unit="/mm3", referenceRange=reference_range), vs)
    assert lab.reference_low == (pytest.approx(low) if low is not None else None)
    assert lab.reference_high == (pytest.approx(high) if high is not None else None)


def test_hemoglobin_reference_range_in_g_per_litre(vs: ValueSets) -> None:
    rng = [{"low": {"value": 120, "unit": "g/L"}, "high": {"value": 160, "unit": "g/L"}}]
    lab = _one(observation("o1", "718-7", value=95, unit="g/L", referenceRange=rng), vs)
    assert lab.reference_low == pytest.approx(12.0)
    assert lab.reference_high == pytest.approx(16.0)


def test_unknown_observation_code_gives_nothing(vs: ValueSets) -> None:
    assert lab_results(observation("o1", "99999-9", value=1.0, unit="g/L"), vs) == []


def test_observation_without_code_gives_nothing(vs: ValueSets) -> None:
    assert lab_results({"resourceType": "Observation", "id": "x", "valueQuantity": {"value": 1}}, vs) == []


@pytest.mark.parametrize(
    ("value_element", "expected"),
    [
        ({"valueString": "Positive"}, {"positive"}),
        ({"valueString": "  NEG  "}, {"negative"}),
        ({"valueString": "weakly positive"}, {"low-positive"}),
        ({"valueString": "no idea"}, set()),
        ({"valueCodeableConcept": concept(SNOMED, "10828004")}, {"positive"}),
        ({"valueCodeableConcept": concept(SNOMED, "260385009")}, {"negative"}),
        ({"valueCodeableConcept": concept(LOINC, "LA6577-6")}, {"negative"}),
        ({"valueCodeableConcept": concept("urn:oid:2.16.840.1.113883.6.96", "42425007")}, {"equivocal"}),
        ({"valueCodeableConcept": {"text": "Positive"}}, {"positive"}),
        ({"valueCodeableConcept": concept("http://local", "P", text="pos")}, {"positive"}),
        ({"interpretation": [concept(V3_INTERPRETATION, "POS")]}, {"positive"}),
        ({"interpretation": [concept("http://hl7.org/fhir/v3/ObservationInterpretation", "NEG")]}, {"negative"}),
        ({"interpretation": concept(V3_INTERPRETATION, "NEG")}, {"negative"}),  # a single object, not a list
        # a coded value leads over the interpretation
        (
            {
                "valueCodeableConcept": concept(SNOMED, "260385009"),
                "interpretation": [concept(V3_INTERPRETATION, "POS")],
            },
            {"negative"},
        ),
        ({}, set()),
    ],
)
def test_result_concepts(vs: ValueSets, value_element: dict[str, Any], expected: set[str]) -> None:
    lab = _one(observation("er", "85337-4", **value_element), vs)
    assert lab.concept == "er-status"
    assert lab.result_concepts == frozenset(expected)
    assert lab.value is None


def test_her2_ihc_score_results(vs: ValueSets) -> None:
    coded = _one(observation("h1", "18474-7", valueCodeableConcept=concept(LOINC, "LA11843-2")), vs)
    text = _one(observation("h2", "85319-2", valueString="2+"), vs)
    assert coded.concept == text.concept == "her2-ihc"
    assert coded.result_concepts == {"her2-ihc-3plus"}
    assert text.result_concepts == {"her2-ihc-2plus"}
    assert text.original == "2+"


def test_coded_value_original_falls_back_to_codes(vs: ValueSets) -> None:
    lab = _one(observation("er", "85337-4", valueCodeableConcept=concept(SNOMED, "10828004")), vs)
    assert lab.original == "10828004"
    shown = _one(observation("er", "85337-4", valueCodeableConcept=concept(SNOMED, "10828004", "Positive")), vs)
    assert shown.original == "Positive"


def test_panel_components_each_give_a_result(vs: ValueSets) -> None:
    panel = {
        "resourceType": "Observation",
        "id": "cbc",
        "status": "final",
        "code": concept(LOINC, "58410-2", text="CBC panel"),
        "effectiveDateTime": "2026-10-01T08:00:00Z",
        "component": [
            {"code": concept(LOINC, "751-8"), "valueQuantity": {"value": 1300, "unit": "/uL"}},
            {"code": concept(LOINC, "6690-2"), "valueQuantity": {"value": 4.1, "unit": "K/uL"}},
            {"code": concept(LOINC, "718-7"), "valueQuantity": {"value": 101, "unit": "g/L"}},
            {"code": concept(LOINC, "99999-9"), "valueQuantity": {"value": 1, "unit": "g/L"}},
            "junk",
        ],
    }
    results = {lab.concept: lab for lab in lab_results(panel, vs)}
    assert set(results) == {"anc", "wbc", "hemoglobin"}
    assert results["anc"].value == pytest.approx(1.3)
    assert results["wbc"].value == pytest.approx(4.1)
    assert results["hemoglobin"].value == pytest.approx(10.1)
    assert all(lab.evidence.reference == "Observation/cbc" for lab in results.values())
    assert all(lab.effective == datetime(2026, 10, 1, 8, tzinfo=UTC) for lab in results.values())


def test_component_with_the_same_concept_as_the_observation_is_not_repeated(vs: ValueSets) -> None:
    resource = observation(
        "a",
        "751-8",
        value=1.3,
        unit="K/uL",
        component=[{"code": concept(LOINC, "26499-4"), "valueQuantity": {"value": 9.9, "unit": "K/uL"}}],
    )
    results = lab_results(resource, vs)
    assert [lab.value for lab in results] == [pytest.approx(1.3)]


def test_esr1_variant_observation_maps_its_gene_component(vs: ValueSets) -> None:
    resource = {
        "resourceType": "Observation",
        "id": "esr1",
        "status": "final",
        "code": concept(LOINC, "69548-6"),
        "effectiveDateTime": "2026-09-15",
        "valueCodeableConcept": concept(LOINC, "LA11882-0", "Detected"),
        "component": [
            {"code": concept(LOINC, "48018-6"), "valueCodeableConcept": concept(HGNC, "HGNC:3467", "ESR1")},
            {"code": concept(LOINC, "48005-3"), "valueCodeableConcept": {"text": "p.Y537S"}},
        ],
    }
    results = {lab.concept: lab for lab in lab_results(resource, vs)}
    assert set(results) == {"esr1-variant", "gene-studied", "amino-acid-change-phgvs"}
    assert results["esr1-variant"].result_concepts == {"detected"}
    assert results["gene-studied"].result_concepts == {"gene-esr1"}
    assert results["gene-studied"].original == "ESR1"
    assert results["amino-acid-change-phgvs"].original == "p.Y537S"


def test_gene_code_through_system_alias(vs: ValueSets) -> None:
    resource = observation(
        "v",
        "69548-6",
        component=[
            {
                "code": concept(LOINC, "48018-6"),
                "valueCodeableConcept": concept("http://www.genenames.org/geneId", "HGNC:3467"),
            }
        ],
    )
    gene = [lab for lab in lab_results(resource, vs) if lab.concept == "gene-studied"]
    assert gene[0].result_concepts == {"gene-esr1"}


@pytest.mark.parametrize(
    ("dates", "expected"),
    [
        ({"effectiveDateTime": "2026-03-04T10:00:00+02:00"}, datetime(2026, 3, 4, 8, tzinfo=UTC)),
        ({"effectivePeriod": {"start": "2026-03-04"}}, datetime(2026, 3, 4, tzinfo=UTC)),
        ({"effectivePeriod": {"end": "2026-03-05"}}, datetime(2026, 3, 5, tzinfo=UTC)),
        ({"effectiveInstant": "2026-03-04T10:00:00Z"}, datetime(2026, 3, 4, 10, tzinfo=UTC)),
        ({"issued": "2026-03-06T00:00:00Z"}, datetime(2026, 3, 6, tzinfo=UTC)),
        ({"effectiveDateTime": "garbage", "issued": "2026-03-06"}, datetime(2026, 3, 6, tzinfo=UTC)),
        ({}, None),
    ],
)
def test_lab_effective_date(vs: ValueSets, dates: dict[str, Any], expected: datetime | None) -> None:
    lab = _one(observation("o", "751-8", value=1.3, unit="K/uL", when=None, **dates), vs)
    assert lab.effective == expected
    assert lab.evidence.date == expected


def test_newest_first_puts_undated_last() -> None:
    def lab(when: datetime | None) -> LabResult:
        return LabResult("anc", when, 1.0, "10*9/L", True, "1")

    old, new = datetime(2020, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
    assert [x.effective for x in newest_first([lab(None), lab(old), lab(new)])] == [new, old, None]


def test_newest_first_keeps_the_order_of_equal_dates() -> None:
    """The same instant in two zones is one date; results of one panel keep the order they arrived in."""
    when = datetime(2026, 1, 1, 8, tzinfo=UTC)
    same = when.astimezone(timezone(timedelta(hours=-5)))
    results = [LabResult(c, w, 1.0, "10*9/L", True, c) for c, w in [("wbc", when), ("anc", None), ("platelets", same)]]
    results.insert(0, LabResult("hemoglobin", when - timedelta(days=1), 1.0, "g/dL", True, "1"))
    assert [x.concept for x in newest_first(results)] == ["wbc", "platelets", "hemoglobin", "anc"]


def test_giga_per_litre_is_not_grams_for_hemoglobin() -> None:
    # "G/L" is a count (giga per litre); a hemoglobin sent in it is mislabelled, never read as g/L.
    assert convert(95, "G/L", LAB_UNITS["hemoglobin"]) is None
