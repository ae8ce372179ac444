"""Blood counts (cds_service/rules/blood_counts.py): CTCAE grading at every grade edge, unit conversion through
the snapshot builder (brief §7 #10, #11, #17), derived ANC, febrile neutropenia, the dose-reduction
suggestion, cycle counting and CBC monitoring, as pure functions of hand-built snapshots; then every scenario
of fhir_fixtures/scenarios-cbc.yaml through the real pipeline with these rules registered (they are not in
cds_service.rules.RULES until the lead registers the module)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from cds_service.cli.evaluate import run
from cds_service.knowledge import Knowledge, load_knowledge
from cds_service.pipeline import Evaluation
from cds_service.prefetch.model import KeyOutcome, PatientData
from cds_service.rules import blood_counts as bc
from cds_service.rules.base import Finding, Rule, Threshold
from cds_service.scenarios import load_json, request_from_record
from cds_service.snapshot.build import build_snapshot
from cds_service.snapshot.model import (
    CodedFact,
    DoseSchedule,
    Evidence,
    LabResult,
    MedicationSource,
    MedicationUse,
    OrderDetails,
    PalbociclibOrder,
    PatientSnapshot,
    Product,
)
from cds_service.terminology import ValueSets, load_valuesets

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fhir_fixtures"
AS_OF = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
TODAY = AS_OF.date()
MORNING = datetime(2026, 11, 20, 8, 15, tzinfo=UTC)
ALL_KEYS = frozenset(
    {"patient", "cbc", "temperature", "conditions", "medicationRequests", "medicationStatements", "medicationHistory"}
)
RULE = {rule.name: rule for rule in bc.RULES}
TABLET = {
    dose: Product(
        "rxnorm",
        f"tab-{dose}",
        f"palbociclib {dose} MG Oral Tablet",
        frozenset({"palbociclib"}),
        "tablet",
        float(dose),
        "SCD",
    )
    for dose in (125, 100, 75)
}


# ------------------------------------------------------------------------------------------------ builders
def at(day: date | str, hour: int = 8) -> datetime:
    moment = date.fromisoformat(day) if isinstance(day, str) else day
    return datetime(moment.year, moment.month, moment.day, hour, 15, tzinfo=UTC)


def lab(
    concept: str,
    value: float | None,
    when: datetime | None = MORNING,
    *,
    rid: str | None = None,
    low: float | None = None,
    original: str | None = None,
) -> LabResult:
    rid = rid or f"{concept}-{when.isoformat() if when else 'undated'}"
    shown = original if original is not None else f"{value}"
    return LabResult(
        concept=concept,
        effective=when,
        value=value,
        unit=None,
        interpretable=value is not None,
        original=shown,
        reference_low=low,
        evidence=Evidence("Observation", rid, when, f"{concept}: {shown}"),
    )


def cbc(
    when: datetime, anc: float | None = 2.4, plt: float = 210, hgb: float = 12.1, wbc: float = 5.6
) -> list[LabResult]:
    out = [lab("wbc", wbc, when), lab("platelets", plt, when), lab("hemoglobin", hgb, when)]
    return out + ([lab("anc", anc, when)] if anc is not None else [])


def palbo(
    start: date | str,
    dose: int = 125,
    *,
    status: str = "completed",
    source: MedicationSource = "request",
    rid: str | None = None,
    ended: date | str | None = "auto",
) -> MedicationUse:
    began = at(start, 0)
    end: datetime | None
    if ended == "auto":
        end = began + timedelta(days=20) if status == "completed" else None
    else:
        end = at(ended, 0) if ended is not None else None
    rid = rid or f"palbo-{began.date().isoformat()}"
    kind = "MedicationStatement" if source == "statement" else "MedicationRequest"
    return MedicationUse(
        ingredients=frozenset({"palbociclib"}),
        groups=frozenset({"cdk46-inhibitor"}),
        source=source,
        status=status,
        product=TABLET[dose],
        matched_by="product",
        text=f"palbociclib {dose} mg",
        evidence=Evidence(kind, rid, began - timedelta(days=1), f"palbociclib {dose} mg ({source}, {status})"),
        started=began,
        ended=end,
    )


def condition(concept: str, status: str | None = "active", text: str | None = None) -> CodedFact:
    when = at("2026-11-13")
    return CodedFact(
        concepts=frozenset({concept}),
        codes=(),
        text=text or concept,
        status=status,
        date=when,
        evidence=Evidence("Condition", f"cond-{concept}", when, concept),
    )


def order(
    dose: float | None = 125,
    *,
    start: date | None = TODAY,
    replaces: tuple[str, ...] = (),
    product_dose: int | None = None,
) -> PalbociclibOrder:
    schedule = None
    if dose is not None:
        schedule = DoseSchedule(dose, 1.0, dose, 21, 28, False, "bounds-duration", f"{dose:g} mg daily 21/7")
    return PalbociclibOrder(
        resource_id="draft",
        status="draft",
        product=TABLET[product_dose] if product_dose else None,
        matched_by="product" if product_dose else "ingredient",
        text="palbociclib",
        evidence=Evidence("MedicationRequest", "draft", AS_OF, "palbociclib (draft order)"),
        details=OrderDetails(schedule=schedule, start=start),
        replaces=replaces,
    )


def snapshot(
    labs: Iterable[LabResult] = (),
    medications: Iterable[MedicationUse] = (),
    conditions: Iterable[CodedFact] = (),
    available: frozenset[str] = ALL_KEYS,
) -> PatientSnapshot:
    ordered = sorted(labs, key=lambda r: -(r.effective or datetime(1, 1, 1, tzinfo=UTC)).timestamp())
    return PatientSnapshot(
        as_of=AS_OF,
        patient_id="p1",
        sex="female",
        birth_date=date(1962, 3, 14),
        age_years=64,
        conditions=tuple(conditions),
        medications=tuple(medications),
        labs=tuple(ordered),
        available=available,
    )


def evaluate(
    name: str, snap: PatientSnapshot, draft: PalbociclibOrder | None = None, **tuned: Threshold
) -> list[Finding]:
    rule = RULE[name]
    return rule.evaluate(snap, draft or order(), {**rule.thresholds, **tuned})


def fired(findings: Iterable[Finding]) -> set[tuple[str, str | None]]:
    return {(f.rule_id, f.indicator) for f in findings}


def ids(findings: Iterable[Finding]) -> set[str]:
    return {f.rule_id for f in findings}


@cache
def valuesets() -> ValueSets:
    return load_valuesets()


# --------------------------------------------------------------------------------------------- grading
@pytest.mark.parametrize(
    ("value", "grade"),
    [(0.0, 4), (0.499, 4), (0.5, 3), (0.999, 3), (1.0, 2), (1.499, 2), (1.5, 1), (1.799, 1), (1.8, 0), (7.0, 0)],
)
def test_anc_grade_edges(value: float, grade: int) -> None:
    assert bc.anc_grade(value, lln=1.8) == grade


def test_anc_grade_uses_the_lln_only_for_grade_1() -> None:
    assert bc.anc_grade(1.9, lln=2.0) == 1
    assert bc.anc_grade(1.9, lln=1.5) == 0
    assert bc.anc_grade(1.4, lln=1.0) == 2  # a low LLN never lifts grade 2 and worse


@pytest.mark.parametrize(
    ("value", "grade"),
    [(10.0, 4), (24.999, 4), (25.0, 3), (49.999, 3), (50.0, 2), (74.999, 2), (75.0, 1), (149.0, 1), (150.0, 0)],
)
def test_platelet_grade_edges(value: float, grade: int) -> None:
    assert bc.platelet_grade(value, lln=150.0) == grade


@pytest.mark.parametrize(
    ("value", "grade4_below", "grade"),
    [
        (6.4, 6.5, 4),
        (6.5, 6.5, 3),
        (7.999, 6.5, 3),
        (8.0, 6.5, 2),
        (9.999, 6.5, 2),
        (10.0, 6.5, 1),
        (11.999, 6.5, 1),
        (12.0, 6.5, 0),
        (5.0, 0.0, 3),  # grade 4 switched off: CTCAE v4 has no number for it
    ],
)
def test_hemoglobin_grade_edges(value: float, grade4_below: float, grade: int) -> None:
    assert bc.hemoglobin_grade(value, lln=12.0, grade4_below=grade4_below) == grade


def test_conversion_rounding_does_not_cross_a_grade_edge() -> None:
    assert bc.anc_grade(0.9999999999, lln=1.8) == 2  # 1000/mm3 after a float conversion
    assert bc.anc_grade(0.4999999999, lln=1.8) == 3


@pytest.mark.parametrize(
    ("dose", "lower"), [(150, 125), (125, 100), (112.5, 100), (100, 75), (87.5, 75), (75, None), (50, None)]
)
def test_next_lower_dose(dose: float, lower: float | None) -> None:
    assert bc.next_lower_dose(dose) == lower


# ------------------------------------------------------------------- unit conversion via the snapshot builder
def _built(*resources: dict[str, Any]) -> PatientSnapshot:
    data = PatientData(
        resources={"patient": ({"resourceType": "Patient", "id": "p1", "gender": "female"},), "cbc": resources},
        outcomes={key: KeyOutcome(key, "prefetched") for key in ALL_KEYS},
    )
    return build_snapshot(data, patient_id="p1", draft_orders=(), evaluated_orders=(), as_of=AS_OF, vs=valuesets())


def _observation(
    rid: str, loinc: str, value: float, unit: str | None, *, ucum: bool = True, when: str = "2026-11-20T08:15:00Z"
) -> dict[str, Any]:
    quantity: dict[str, Any] = {"value": value}
    if unit is not None:
        quantity |= {"unit": unit} | ({"system": "http://unitsofmeasure.org", "code": unit} if ucum else {})
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
        "effectiveDateTime": when,
        "valueQuantity": quantity,
    }


@pytest.mark.parametrize(
    ("value", "unit", "ucum", "grade"),
    [
        (499, "/mm3", True, 4),
        (500, "/mm3", True, 3),
        (999, "/mm3", True, 3),
        (1000, "/mm3", True, 2),
        (1499, "/mm3", True, 2),
        (1500, "/mm3", True, 1),
        (0.499, "10*9/L", True, 4),
        (0.5, "10*9/L", True, 3),
        (0.999, "10*9/L", True, 3),
        (1.0, "10*9/L", True, 2),
        (1.499, "10*9/L", True, 2),
        (1.5, "10*9/L", True, 1),
        (450, "cells/uL", False, 4),
        (0.8, "K/uL", False, 3),
        (1.2, "x10E3/uL", False, 2),
        (1.3, "thou/mm3", False, 2),
        (1.3, "G/L", False, 2),
    ],
)
def test_anc_units_are_normalised_before_grading(value: float, unit: str, ucum: bool, grade: int) -> None:
    anc = bc.latest_anc(_built(_observation("o1", "751-8", value, unit, ucum=ucum)))
    assert anc is not None
    assert anc.value is not None
    assert bc.anc_grade(anc.value, lln=1.8) == grade


def test_behaviour_10_anc_1_2_in_10e9_per_litre_is_grade_2_without_a_card() -> None:
    snap = _built(_observation("o1", "751-8", 1.2, "10*9/L"))
    assert evaluate("neutropenia", snap) == []


def test_behaviour_11_anc_1300_per_mm3_and_1_3_k_per_ul_both_grade_2() -> None:
    for resource in (_observation("o1", "26499-4", 1300, "/mm3"), _observation("o2", "751-8", 1.3, "K/uL", ucum=False)):
        snap = _built(resource)
        anc = bc.latest_anc(snap)
        assert anc is not None
        assert anc.value == pytest.approx(1.3)
        assert evaluate("neutropenia", snap) == []
    both = _built(_observation("o1", "26499-4", 1300, "/mm3"), _observation("o2", "751-8", 1.3, "K/uL", ucum=False))
    assert evaluate("neutropenia", both) == []


def test_behaviour_12_anc_without_unit_cannot_be_graded() -> None:
    snap = _built(_observation("o1", "751-8", 1.4, None))
    findings = evaluate("neutropenia", snap)
    assert ids(findings) == {"anc-unit-unknown"}
    assert "1.4" in findings[0].params["anc_source"]


def test_an_unknown_unit_is_not_replaced_by_an_older_graded_anc() -> None:
    older = _observation("o0", "751-8", 0.3, "10*9/L", when="2026-11-10T08:00:00Z")
    snap = _built(older, _observation("o1", "751-8", 1.4, "furlongs"))
    assert ids(evaluate("neutropenia", snap)) == {"anc-unit-unknown"}


@pytest.mark.parametrize(
    ("value", "unit", "grade"),
    [(7.6, "g/dL", 3), (76, "g/L", 3), (95, "g/L", 2), (9.5, "g/dL", 2), (4.7, "mmol/L", 3), (80, "g/L", 2)],
)
def test_behaviour_17_hemoglobin_units(value: float, unit: str, grade: int) -> None:
    snap = _built(_observation("h1", "718-7", value, unit))
    hgb = bc._newest(snap.labs_for("hemoglobin"))
    assert hgb is not None
    assert hgb.value is not None
    assert bc.hemoglobin_grade(hgb.value, 12.0, 6.5) == grade
    assert ids(evaluate("hemoglobin", snap)) == ({"anemia"} if grade >= 3 else set())


@pytest.mark.parametrize(
    ("value", "unit", "grade"), [(40, "10*3/uL", 3), (40000, "/uL", 3), (50, "K/uL", 2), (24, "10*9/L", 4)]
)
def test_platelet_units(value: float, unit: str, grade: int) -> None:
    snap = _built(_observation("p1", "777-3", value, unit, ucum=unit != "K/uL"))
    findings = evaluate("platelet-count", snap)
    expected = {"thrombocytopenia"} if grade >= 3 else set()
    assert ids(findings) == expected
    if findings:
        assert findings[0].params["grade"] == str(grade)
        assert findings[0].indicator == ("critical" if grade == 4 else "warning")


# ----------------------------------------------------------------------------------------------- derived ANC
def test_anc_is_derived_from_wbc_and_differential_of_the_same_specimen() -> None:
    snap = snapshot([lab("wbc", 2.0), lab("neutrophils-percent", 35.0), lab("bands-percent", 5.0)])
    anc = bc.latest_anc(snap)
    assert anc is not None
    assert anc.derived
    assert anc.value == pytest.approx(0.8)
    findings = evaluate("neutropenia", snap)
    assert ids(findings) == {"neutropenia-grade3"}
    assert "derived" in findings[0].params["anc_source"]
    assert {e.resource_id for e in findings[0].evidence} >= {lab("wbc", 2.0).evidence.resource_id}


def test_no_derivation_across_specimen_times() -> None:
    snap = snapshot([lab("wbc", 2.0), lab("neutrophils-percent", 40.0, MORNING - timedelta(hours=1))])
    assert bc.latest_anc(snap) is None
    assert evaluate("neutropenia", snap) == []


def test_a_reported_anc_leads_over_a_derivation_at_the_same_time() -> None:
    snap = snapshot([lab("anc", 2.4), lab("wbc", 2.0), lab("neutrophils-percent", 40.0)])
    anc = bc.latest_anc(snap)
    assert anc is not None
    assert not anc.derived
    assert anc.value == 2.4


def test_a_newer_derived_anc_leads_over_an_older_reported_one() -> None:
    snap = snapshot([lab("anc", 2.4, MORNING - timedelta(days=3)), lab("wbc", 1.0), lab("neutrophils-percent", 40.0)])
    assert ids(evaluate("neutropenia", snap)) == {"neutropenia-grade4"}


def test_derivation_with_an_uninterpretable_wbc_is_a_unit_problem() -> None:
    snap = snapshot([lab("wbc", None, original="5.6"), lab("neutrophils-percent", 40.0)])
    assert ids(evaluate("neutropenia", snap)) == {"anc-unit-unknown"}


def test_bands_with_an_unknown_unit_are_left_out_of_the_derivation() -> None:
    snap = snapshot([lab("wbc", 2.0), lab("neutrophils-percent", 40.0), lab("bands-percent", None, original="4")])
    anc = bc.latest_anc(snap)
    assert anc is not None
    assert anc.value == pytest.approx(0.8)
    assert "bands left out" in anc.original


# --------------------------------------------------------------------------------------------- neutropenia
def _on_cycle_2(*labs: LabResult, conditions: Iterable[CodedFact] = ()) -> PatientSnapshot:
    return snapshot(list(labs), [palbo("2026-10-23")], conditions)


@pytest.mark.parametrize(
    ("anc", "expected"),
    [
        (0.3, {("neutropenia-grade4", None)}),
        (0.499, {("neutropenia-grade4", None)}),
        (0.5, {("neutropenia-grade3", None)}),
        (0.8, {("neutropenia-grade3", None)}),
        (0.999, {("neutropenia-grade3", None)}),
        (1.0, set()),
        (1.3, set()),
        (2.4, set()),
    ],
)
def test_neutropenia_cards_by_grade(anc: float, expected: set[tuple[str, str | None]]) -> None:
    assert fired(evaluate("neutropenia", _on_cycle_2(lab("anc", anc)))) == expected


def test_grade3_on_day1_says_withhold_and_restart_at_the_same_dose() -> None:
    (finding,) = evaluate("neutropenia", _on_cycle_2(lab("anc", 0.8)))
    assert finding.params["context"] == " before cycle 2"
    assert "within 1 week" in finding.params["summary_action"]
    assert "same dose" in finding.params["action"]


def test_grade3_on_day15_of_cycle_1_says_continue_and_repeat_on_day22() -> None:
    started = date(2026, 11, 6)  # today is Day 15
    snap = snapshot([lab("anc", 0.7)], [palbo(started, status="active")])
    draft = order(start=None, replaces=("MedicationRequest/palbo-2026-11-06",))
    (finding,) = evaluate("neutropenia", snap, draft)
    assert finding.params["context"] == " on Day 15 of cycle 1"
    assert "Day 22 (2026-11-27)" in finding.params["action"]
    assert finding.params["summary_action"].startswith("continue")


def test_grade3_before_the_first_cycle_says_do_not_start() -> None:
    (finding,) = evaluate("neutropenia", snapshot([lab("anc", 0.8)]))
    assert finding.params["context"] == " before the first cycle"
    assert finding.params["summary_action"].startswith("do not start")


def test_grade3_wording_without_the_medication_history_is_generic() -> None:
    snap = snapshot([lab("anc", 0.8)], [palbo("2026-10-23")], available=frozenset({"cbc", "temperature", "conditions"}))
    (finding,) = evaluate("neutropenia", snap)
    assert finding.params["context"] == ""


@pytest.mark.parametrize(
    ("history", "draft", "next_dose", "short"),
    [
        ([palbo("2026-10-23", 125)], order(125, product_dose=125), "100", "resume at 100 mg after recovery"),
        ([palbo("2026-10-23", 100)], order(100, product_dose=100), "75", "resume at 75 mg after recovery"),
        ([palbo("2026-10-23", 75)], order(75, product_dose=75), "", "discontinue (already at the lowest dose, 75 mg)"),
        ([palbo("2026-10-23", 125)], order(100, product_dose=100), "", "resume at 100 mg (this draft) after recovery"),
        ([], order(125, product_dose=125), "100", "resume at 100 mg after recovery"),
        ([], order(None), "", "resume one dose level lower after recovery"),
    ],
)
def test_grade4_next_lower_dose(
    history: list[MedicationUse], draft: PalbociclibOrder, next_dose: str, short: str
) -> None:
    (finding,) = evaluate("neutropenia", snapshot([lab("anc", 0.45)], history), draft)
    assert finding.rule_id == "neutropenia-grade4"
    assert finding.params["next_dose_mg"] == next_dose
    assert finding.params["dose_short"] == short


def test_grade4_dose_comes_from_the_product_when_the_schedule_is_unknown() -> None:
    draft = dataclasses.replace(order(None), product=TABLET[100])
    (finding,) = evaluate("neutropenia", snapshot([lab("anc", 0.45)]), draft)
    assert finding.params["next_dose_mg"] == "75"


# ------------------------------------------------------------------------------------ febrile neutropenia
def temperature(celsius: float, when: datetime = MORNING - timedelta(minutes=25)) -> LabResult:
    return lab("body-temperature", celsius, when)


@pytest.mark.parametrize(
    ("anc", "celsius", "offset_hours", "expected"),
    [
        (0.9, 38.7, 0, {"febrile-neutropenia"}),  # behaviour 9
        (0.9, 38.5, 0, {"febrile-neutropenia"}),  # the label's cutoff is inclusive
        (0.9, 38.4, 0, {"neutropenia-grade3"}),
        (0.4, 39.0, 0, {"febrile-neutropenia"}),  # grade 4 with fever: one card
        (0.9, 38.7, 23, {"febrile-neutropenia"}),
        (0.9, 38.7, 25, {"neutropenia-grade3"}),  # not the same day
        (0.9, 38.7, -30, {"neutropenia-grade3"}),
        (1.2, 39.0, 0, set()),  # grade 2 with fever is not febrile neutropenia by the label's row
    ],
)
def test_febrile_neutropenia_from_anc_and_temperature(
    anc: float, celsius: float, offset_hours: int, expected: set[str]
) -> None:
    snap = _on_cycle_2(lab("anc", anc), temperature(celsius, MORNING + timedelta(hours=offset_hours)))
    assert ids(evaluate("neutropenia", snap)) == expected


def test_fever_cutoff_is_a_site_threshold() -> None:
    snap = _on_cycle_2(lab("anc", 0.9), temperature(38.2))
    assert ids(evaluate("neutropenia", snap, fever_celsius=38.0)) == {"febrile-neutropenia"}


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ([condition("febrile-neutropenia")], True),
        ([condition("febrile-neutropenia", status="resolved")], False),
        ([condition("febrile-neutropenia", status="inactive")], False),
        ([condition("neutropenia"), condition("fever-with-condition-elsewhere")], True),  # D70.x + R50.81
        ([condition("neutropenia")], False),
    ],
)
def test_febrile_neutropenia_from_conditions(conditions: list[CodedFact], expected: bool) -> None:
    findings = evaluate("neutropenia", _on_cycle_2(lab("anc", 1.2), conditions=conditions))
    assert ("febrile-neutropenia" in ids(findings)) is expected


def test_febrile_neutropenia_replaces_the_grade_card_and_suggests_the_lower_dose() -> None:
    snap = _on_cycle_2(lab("anc", 0.7), conditions=[condition("febrile-neutropenia", text="Febrile neutropenia")])
    (finding,) = evaluate("neutropenia", snap)
    assert finding.rule_id == "febrile-neutropenia"
    assert finding.params["next_dose_mg"] == "100"
    assert "Febrile neutropenia (since 2026-11-13)" in finding.params["basis"]


def test_unit_problem_is_still_reported_next_to_a_febrile_neutropenia_diagnosis() -> None:
    snap = _on_cycle_2(lab("anc", None, original="0.9"), conditions=[condition("febrile-neutropenia")])
    assert ids(evaluate("neutropenia", snap)) == {"febrile-neutropenia", "anc-unit-unknown"}


# ---------------------------------------------------------------------------------- platelets, hemoglobin
@pytest.mark.parametrize(
    ("platelets", "expected"),
    [(18, {("thrombocytopenia", "critical")}), (40, {("thrombocytopenia", "warning")}), (50, set()), (150, set())],
)
def test_thrombocytopenia(platelets: float, expected: set[tuple[str, str]]) -> None:
    findings = evaluate("platelet-count", _on_cycle_2(lab("platelets", platelets)))
    assert fired(findings) == expected
    for finding in findings:
        assert finding.params["next_dose_mg"] == ("100" if finding.indicator == "critical" else "")


@pytest.mark.parametrize(
    ("hemoglobin", "tuned", "expected"),
    [
        (7.6, {}, {("anemia", "warning")}),
        (6.2, {}, {("anemia", "critical")}),
        (6.2, {"hemoglobin_grade4_below": 0.0}, {("anemia", "warning")}),
        (8.0, {}, set()),
        (9.5, {}, set()),
    ],
)
def test_anemia(hemoglobin: float, tuned: Mapping[str, Threshold], expected: set[tuple[str, str]]) -> None:
    findings = evaluate("hemoglobin", _on_cycle_2(lab("hemoglobin", hemoglobin)), **tuned)
    assert fired(findings) == expected


def test_newest_count_leads_and_an_uninterpretable_newest_one_is_not_graded() -> None:
    recovered = [lab("platelets", 40, MORNING - timedelta(days=7)), lab("platelets", 120)]
    assert evaluate("platelet-count", _on_cycle_2(*recovered)) == []
    unreadable = [lab("platelets", 20, MORNING - timedelta(days=7)), lab("platelets", None, original="20")]
    assert evaluate("platelet-count", _on_cycle_2(*unreadable)) == []


@pytest.mark.parametrize("reversed_order", [False, True])
def test_at_the_same_time_the_interpretable_count_leads(reversed_order: bool) -> None:
    same_time = [lab("platelets", None, original="40 K/uL?", rid="unreadable"), lab("platelets", 40, rid="readable")]
    snap = _on_cycle_2(*(same_time[::-1] if reversed_order else same_time))
    assert fired(evaluate("platelet-count", snap)) == {("thrombocytopenia", "warning")}


# -------------------------------------------------------------------------------------------------- cycles
def test_first_order_is_cycle_1() -> None:
    context = bc.cycle_context(snapshot(), order())
    assert context.first_order
    assert context.new_cycle
    assert (context.number, context.start) == (1, TODAY)


def test_one_order_per_cycle() -> None:
    history = [palbo("2026-09-25"), palbo("2026-10-23")]
    context = bc.cycle_context(snapshot(medications=history), order())
    assert context.starts == (date(2026, 9, 25), date(2026, 10, 23))
    assert (context.new_cycle, context.number, context.start) == (True, 3, TODAY)


def test_orders_less_than_21_days_apart_are_one_cycle() -> None:
    history = [palbo("2026-10-23", rid="a"), palbo("2026-11-02", 100, rid="b")]  # mid-cycle dose change
    assert bc.cycle_context(snapshot(medications=history), order()).number == 2


def test_medication_statement_counts_a_cycle_per_28_days() -> None:
    since_may = palbo("2026-05-01", source="statement", status="active", ended=None)
    context = bc.cycle_context(snapshot(medications=[since_may]), order())
    assert len(context.starts) == 7  # 05-01 ... 10-16
    assert context.number == 8


def test_draft_replacing_the_current_order_mid_cycle_continues_the_cycle() -> None:
    current = palbo("2026-11-05", status="active")
    draft = order(start=None, replaces=("MedicationRequest/palbo-2026-11-05",))
    context = bc.cycle_context(snapshot(medications=[current]), draft)
    assert (context.new_cycle, context.number, context.start) == (False, 1, date(2026, 11, 5))
    assert context.day_of(TODAY) == 16


def test_draft_start_within_21_days_of_day_1_continues_the_cycle() -> None:
    current = palbo("2026-11-05", status="active")
    assert not bc.cycle_context(snapshot(medications=[current]), order(start=TODAY)).new_cycle
    assert bc.cycle_context(snapshot(medications=[current]), order(start=date(2026, 12, 3))).new_cycle


def test_draft_without_start_that_replaces_nothing_is_the_next_cycle() -> None:
    current = palbo("2026-11-05", status="active")
    context = bc.cycle_context(snapshot(medications=[current]), order(start=None))
    assert (context.new_cycle, context.number, context.start) == (True, 2, date(2026, 12, 3))


# ---------------------------------------------------------------------------------------------- monitoring
def test_cbc_missing_only_for_a_first_order() -> None:
    assert ids(evaluate("cbc-recency", snapshot())) == {"cbc-missing"}
    later = evaluate("cbc-recency", snapshot(medications=[palbo("2026-10-23")]))
    assert fired(later) >= {("cbc-stale", "warning")}
    assert "cbc-missing" not in ids(later)


def test_a_cbc_panel_or_a_derivable_differential_counts_as_a_cbc() -> None:
    assert "cbc-missing" not in ids(evaluate("cbc-recency", snapshot([lab("cbc-panel", None)])))
    assert "cbc-missing" not in ids(
        evaluate("cbc-recency", snapshot([lab("wbc", 5.0), lab("neutrophils-percent", 50)]))
    )


@pytest.mark.parametrize(
    ("age_days", "expected"),
    [
        (0, set()),
        (7, set()),
        (8, {("cbc-stale", "info")}),
        (14, {("cbc-stale", "info")}),
        (15, {("cbc-stale", "warning")}),
        (20, {("cbc-stale", "warning")}),
    ],
)
def test_cbc_freshness_at_a_new_cycle(age_days: int, expected: set[tuple[str, str]]) -> None:
    history = [palbo("2026-08-28"), palbo("2026-09-25"), palbo("2026-10-23")]  # cycle 4: no Day-15 reminder
    snap = snapshot(cbc(at(TODAY - timedelta(days=age_days))), history)
    assert fired(evaluate("cbc-recency", snap)) == expected


def test_stale_thresholds_are_site_tunable() -> None:
    history = [palbo("2026-08-28"), palbo("2026-09-25"), palbo("2026-10-23")]
    snap = snapshot(cbc(at(TODAY - timedelta(days=20))), history)
    assert fired(evaluate("cbc-recency", snap, stale_after_days=21)) == {("cbc-stale", "info")}


def test_no_freshness_check_for_a_mid_cycle_draft() -> None:
    current = palbo("2026-11-10", status="active")
    snap = snapshot(cbc(at("2026-10-20")), [current])
    draft = order(start=None, replaces=("MedicationRequest/palbo-2026-11-10",))
    assert "cbc-stale" not in ids(evaluate("cbc-recency", snap, draft))


def _six_cycles(anc_values: list[float], latest_cbc_days: int) -> PatientSnapshot:
    """Cycles 1-6 every 28 days from 2026-04-24, cycle 7 on 2026-10-09; ANCs on Day 1 of cycles 1-5 and one
    more CBC ``latest_cbc_days`` ago; the draft is cycle 8."""
    starts = [date(2026, 4, 24) + timedelta(days=28 * k) for k in range(6)] + [date(2026, 10, 9)]
    labs = [lab("anc", value, at(starts[k])) for k, value in enumerate(anc_values)]
    labs += cbc(at(TODAY - timedelta(days=latest_cbc_days)), anc=1.4)
    return snapshot(labs, [palbo(s) for s in starts])


@pytest.mark.parametrize(
    ("anc_values", "age", "expected"),
    [
        ([1.2, 1.6, 1.1, 1.4, 1.5], 70, set()),  # behaviour 18: q3-month monitoring
        ([1.2, 1.6, 1.1, 1.4, 1.5], 95, {("cbc-stale", "warning")}),  # older than 3 months
        ([1.2, 0.8, 1.1, 1.4, 1.5], 70, {("cbc-stale", "warning")}),  # a grade 3 in the first 6 cycles
    ],
)
def test_quarterly_monitoring_after_six_cycles(
    anc_values: list[float], age: int, expected: set[tuple[str, str]]
) -> None:
    assert fired(evaluate("cbc-recency", _six_cycles(anc_values, age))) == expected


def test_fewer_than_six_cycles_keep_monthly_monitoring() -> None:
    starts = [date(2026, 6, 19) + timedelta(days=28 * k) for k in range(5)]
    snap = snapshot(
        [*(lab("anc", 1.6, at(s)) for s in starts), *cbc(at(TODAY - timedelta(days=70)))], [palbo(s) for s in starts]
    )
    assert fired(evaluate("cbc-recency", snap)) == {("cbc-stale", "warning")}


def test_behaviour_15_day15_cbc_not_done_on_day_16() -> None:
    current = palbo("2026-11-05", status="active")
    snap = snapshot(cbc(at("2026-11-05")), [current])
    draft = order(start=None, replaces=("MedicationRequest/palbo-2026-11-05",))
    (finding,) = evaluate("cbc-recency", snap, draft)
    assert finding.rule_id == "day15-cbc-due"
    assert finding.params["day15_date"] == "2026-11-19"
    assert "Day 16" in finding.params["state"]


@pytest.mark.parametrize(("cbc_day", "due"), [(13, False), (15, False), (12, True), (1, True)])
def test_day15_window_starts_on_day_13(cbc_day: int, due: bool) -> None:
    start = date(2026, 11, 5)
    snap = snapshot(cbc(at(start + timedelta(days=cbc_day - 1))), [palbo(start, status="active")])
    draft = order(start=None, replaces=("MedicationRequest/palbo-2026-11-05",))
    assert ("day15-cbc-due" in ids(evaluate("cbc-recency", snap, draft))) is due


def test_no_day15_card_after_cycle_2() -> None:
    history = [palbo("2026-09-10"), palbo("2026-10-08"), palbo("2026-11-05", status="active")]
    snap = snapshot(cbc(at("2026-11-05")), history)
    draft = order(start=None, replaces=("MedicationRequest/palbo-2026-11-05",))
    assert evaluate("cbc-recency", snap, draft) == []


def test_day15_reminder_for_a_new_cycle_1_or_2_is_a_site_option() -> None:
    snap = snapshot(cbc(MORNING))
    assert evaluate("cbc-recency", snap) == []  # brief §7 #1: the base case gives no card
    (finding,) = evaluate("cbc-recency", snap, day15_reminder=True)
    assert (finding.rule_id, finding.params["state"], finding.params["day15_date"]) == (
        "day15-cbc-due",
        "is due",
        "2026-12-04",
    )
    mid_cycle = snapshot(cbc(at("2026-11-12")), [palbo("2026-11-12", status="active")])
    draft = order(start=None, replaces=("MedicationRequest/palbo-2026-11-12",))
    (finding,) = evaluate("cbc-recency", mid_cycle, draft, day15_reminder=True)
    assert finding.params["day15_date"] == "2026-11-26"


def test_rules_declare_what_they_read() -> None:
    assert RULE["neutropenia"].needs == {"cbc", "temperature", "conditions"}
    assert RULE["cbc-recency"].needs == {"cbc", "medicationRequests", "medicationStatements", "medicationHistory"}
    assert RULE["cbc-recency"].thresholds["stale_after_days"] == 14
    assert RULE["neutropenia"].thresholds["fever_celsius"] == 38.5


# ---------------------------------------------------------------------------- scenarios through the pipeline
MANIFEST = yaml.safe_load((FIXTURES / "scenarios-cbc.yaml").read_text())
SCENARIOS: list[dict[str, Any]] = MANIFEST["scenarios"]
ABSENT: dict[str, set[str]] = {
    "cbc-day15-done": {"day15-cbc-due"},
    "cbc-quarterly-after-six-cycles": {"cbc-stale", "day15-cbc-due"},
    "cbc-anc-grade2-two-feeds": {"anc-unit-unknown"},
    "cbc-anc-grade2-si-unit": {"anc-unit-unknown"},
    "cbc-derived-anc-normal": {"cbc-missing"},
    "cbc-neutropenia-fever-below-cutoff": {"febrile-neutropenia"},
    "cbc-febrile-neutropenia": {"neutropenia-grade3", "neutropenia-grade4"},
}


@cache
def knowledge() -> Knowledge:
    """The shipped knowledge with the blood-count rules registered (once the lead adds the module to
    cds_service.rules.RULES this adds nothing)."""
    loaded = load_knowledge(REPO / "cards")
    present = {rule.name for rule in loaded.rules}
    return dataclasses.replace(loaded, rules=loaded.rules + tuple(r for r in bc.RULES if r.name not in present))


def _evaluate(name: str, service: str = "palbociclib-order-sign", drop: tuple[str, ...] = ()) -> Evaluation:
    bundle = load_json(FIXTURES / f"{name}.json")
    request = request_from_record(bundle, knowledge().registry[service], hook_instance=f"test-{name}")
    for key in drop:
        request["prefetch"].pop(key)
    return asyncio.run(run(knowledge(), request, service, AS_OF))


def _cards(evaluation: Evaluation) -> set[tuple[str, str]]:
    return {(card.rule_id, card.indicator) for card in evaluation.response.cards}


@pytest.mark.parametrize("service", ["palbociclib-order-sign", "palbociclib-order-select"])
@pytest.mark.parametrize("entry", SCENARIOS, ids=[s["name"] for s in SCENARIOS])
def test_cbc_scenarios_give_their_expected_cards(entry: dict[str, Any], service: str) -> None:
    cards = _cards(_evaluate(entry["name"], service))
    expected = {(c["rule_id"], c["indicator"]) for c in entry["expected_cards"]}
    assert {c for c in cards if c[1] != "info"} == expected
    assert {(c["rule_id"], "info") for c in entry.get("expected_info") or []} <= cards
    assert not {rule_id for rule_id, _ in cards} & ABSENT.get(entry["name"], set())


def test_every_blood_count_card_has_a_firing_scenario_and_every_rule_a_clean_one() -> None:
    listed = {c["rule_id"] for s in SCENARIOS for c in s["expected_cards"] + (s.get("expected_info") or [])}
    assert {card for rule in bc.RULES for card in rule.fires} <= listed
    assert sum(1 for s in SCENARIOS if not s["expected_cards"]) >= 4


def test_brief_behaviours_7_to_18_each_have_a_scenario() -> None:
    assert {s["brief_behaviour"] for s in SCENARIOS} >= set(range(7, 19))


def test_grade4_scenario_suggests_the_next_lower_dose_on_the_labelled_schedule() -> None:
    (card,) = _evaluate("cbc-neutropenia-grade4").response.cards
    update = next(a for s in card.suggestions or [] for a in s.actions if a.type == "update")
    assert update.resource is not None
    assert update.resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 100
    assert update.resource["dosageInstruction"][0]["timing"]["repeat"]["boundsDuration"]["value"] == 21


def test_grade4_at_the_lowest_dose_only_offers_cancelling() -> None:
    (card,) = _evaluate("cbc-neutropenia-grade4-lowest-dose").response.cards
    assert [a.type for s in card.suggestions or [] for a in s.actions] == ["delete"]
    assert "discontinue" in card.summary


def test_derived_anc_card_says_it_was_derived() -> None:
    card = next(c for c in _evaluate("cbc-derived-anc-grade3").response.cards if c.rule_id == "neutropenia-grade3")
    assert "derived from the WBC and differential of one specimen" in (card.detail or "")
    assert "800/mm³" in card.summary


def test_missing_temperature_skips_the_neutropenia_check_and_says_so() -> None:
    evaluation = _evaluate("cbc-febrile-neutropenia", drop=("temperature",))
    assert "neutropenia" in evaluation.skipped
    assert ("data-unavailable", "warning") in _cards(evaluation)
    assert "febrile-neutropenia" not in {c.rule_id for c in evaluation.response.cards}


def test_cbc_suggestion_is_a_draft_service_request_for_a_cbc_with_differential() -> None:
    card = next(c for c in _evaluate("cbc-missing-first-cycle").response.cards if c.rule_id == "cbc-missing")
    (suggestion,) = card.suggestions or []
    resource = suggestion.actions[0].resource
    assert resource is not None
    assert resource["resourceType"] == "ServiceRequest"
    assert (resource["status"], resource["intent"]) == ("draft", "order")
    assert resource["code"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "57021-8",
        "display": "CBC W Auto Differential panel - Blood",
    }


def test_rule_helpers_are_typed_as_rules() -> None:
    assert all(isinstance(rule, Rule) for rule in bc.RULES)
