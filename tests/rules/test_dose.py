"""Dose and schedule rules (brief §1.1-1.3, behaviours 2-6) as pure functions of a hand-built snapshot."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from cds_service.catalogue import CardEntry
from cds_service.rules import dose
from cds_service.rules.base import Finding, Threshold
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
from cds_service.snapshot.order_details import DOSE_PROBLEM, SCHEDULE_PROBLEM, describe_order
from tests.rules.builders import medication_use

CARDS = Path(__file__).resolve().parents[2] / "cards"
AS_OF = datetime(2026, 11, 20, 15, tzinfo=UTC)
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
TAB_125 = Product(RXNORM, "2284105", "palbociclib 125 MG Oral Tablet", frozenset({"palbociclib"}), "tablet", 125.0)
TAB_100 = Product(RXNORM, "2284102", "palbociclib 100 MG Oral Tablet", frozenset({"palbociclib"}), "tablet", 100.0)
DEFAULTS: dict[str, Threshold] = {"warn_when_schedule_unstated": True}


def schedule(
    dose_mg: float | None = 125.0,
    per_day: float | None = 1.0,
    *,
    days_on: int | None = 21,
    cycle: int | None = 28,
    continuous: bool = False,
    problems: tuple[str, ...] = (),
    encoding: str = "bounds-duration",
) -> DoseSchedule:
    daily = dose_mg * per_day if dose_mg is not None and per_day is not None else None
    return DoseSchedule(
        dose_mg=dose_mg,
        administrations_per_day=per_day,
        daily_dose_mg=daily,
        days_on=days_on,
        cycle_days=cycle,
        continuous=continuous,
        encoding=encoding,
        original=f"dose {dose_mg} mg",
        problems=problems,
    )


def make_order(
    sched: DoseSchedule | None = None, *, product: Product | None = TAB_125, reasons: tuple[str, ...] = ()
) -> PalbociclibOrder:
    return PalbociclibOrder(
        resource_id="palbo",
        status="draft",
        product=product,
        matched_by="product",
        text=product.display if product else "palbociclib",
        evidence=Evidence("MedicationRequest", "palbo", AS_OF, "palbociclib (draft order)"),
        details=OrderDetails(schedule=sched, reasons=reasons),
    )


def med(
    ingredient: str, groups: tuple[str, ...] = (), *, source: MedicationSource = "request", status: str = "active"
) -> MedicationUse:
    return medication_use(ingredient, groups, source, status, started=None)


def condition(concept: str, status: str = "active") -> CodedFact:
    return CodedFact(
        concepts=frozenset({concept}),
        codes=(),
        text=concept,
        status=status,
        date=None,
        evidence=Evidence("Condition", concept, None, concept),
    )


def child_pugh(klass: str, when: datetime) -> LabResult:
    return LabResult(
        concept="child-pugh-class",
        effective=when,
        value=None,
        unit=None,
        interpretable=True,
        original=klass,
        result_concepts=frozenset({f"child-pugh-{klass.lower()}"}),
        evidence=Evidence("Observation", f"cp-{klass}", when, f"Child-Pugh class {klass}"),
    )


def snapshot(
    *medications: MedicationUse, conditions: tuple[CodedFact, ...] = (), labs: tuple[LabResult, ...] = ()
) -> PatientSnapshot:
    return PatientSnapshot(
        as_of=AS_OF,
        patient_id="p",
        sex="female",
        birth_date=None,
        age_years=64,
        conditions=conditions,
        medications=medications,
        labs=labs,
        available=frozenset(
            {"medicationRequests", "medicationStatements", "medicationHistory", "conditions", "childPugh"}
        ),
    )


def run(
    sched: DoseSchedule | None,
    snap: PatientSnapshot | None = None,
    thresholds: Mapping[str, Threshold] = DEFAULTS,
    **order_args: Any,
) -> list[Finding]:
    order = make_order(sched, **order_args)
    snap = snap or snapshot()
    return [finding for rule in dose.RULES for finding in rule.evaluate(snap, order, thresholds)]


def ids(findings: list[Finding]) -> list[str]:
    return [f.rule_id for f in findings]


def only(findings: list[Finding], rule_id: str) -> Finding:
    found = [f for f in findings if f.rule_id == rule_id]
    assert len(found) == 1, ids(findings)
    return found[0]


# --------------------------------------------------------------------------------------------- dose level


@pytest.mark.parametrize(
    ("sched", "expected"),
    [
        (schedule(125.0), []),
        (schedule(100.0), ["reduced-start-dose"]),
        (schedule(75.0), ["reduced-start-dose"]),
        (schedule(150.0), ["dose-above-maximum"]),
        (schedule(125.0, 2.0), ["dose-above-maximum"]),
        (schedule(150.0, None), ["dose-above-maximum", "schedule-not-21-7"]),
        (schedule(50.0), ["dose-below-minimum"]),
        (schedule(25.0), ["dose-below-minimum"]),
        (schedule(125.0, 0.5), ["dose-below-minimum"]),
        (schedule(112.5), ["dose-nonstandard"]),
        (schedule(80.0), ["dose-nonstandard"]),
        (schedule(62.5, 2.0), ["schedule-not-21-7"]),
        (schedule(112.5, None), ["dose-nonstandard", "schedule-not-21-7"]),
        (schedule(50.0, None), ["dose-nonstandard", "schedule-not-21-7"]),
        (schedule(100.0, None), ["schedule-not-21-7"]),
    ],
    ids=[
        "125-labelled",
        "100-reduced-start-only",
        "75-reduced-start-only",
        "150-above",
        "125-bid-above",
        "150-per-dose-unknown-frequency",
        "50-below",
        "25-below",
        "125-every-other-day-below",
        "112.5-nonstandard",
        "80-nonstandard",
        "62.5-bid-is-125-a-day-but-not-once-daily",
        "112.5-per-dose-unknown-frequency",
        "50-per-dose-unknown-frequency",
        "100-per-dose-unknown-frequency",
    ],
)
def test_which_cards_fire(sched: DoseSchedule, expected: list[str]) -> None:
    assert sorted(ids(run(sched))) == sorted(expected)


def test_above_maximum_names_the_amount_and_frequency() -> None:
    finding = only(run(schedule(125.0, 2.0)), "dose-above-maximum")
    assert finding.params["amount"] == "250 mg/day (125 mg twice daily)"
    assert finding.params["daily_dose"] == "250 mg/day"
    assert finding.params["frequency"] == "twice daily"
    assert "125 MG Oral Tablet (125 mg per tablet)" in finding.params["product"]
    assert finding.evidence[0].reference == "MedicationRequest/palbo"


def test_above_maximum_per_dose_when_the_frequency_is_unknown() -> None:
    finding = only(run(schedule(150.0, None)), "dose-above-maximum")
    assert finding.params["amount"] == "150 mg per dose (frequency not stated)"


def test_dose_problems_go_on_the_critical_card_not_a_second_one() -> None:
    problem = f"{DOSE_PROBLEM}150 mg is not a whole number of 125 mg tablets"
    findings = run(schedule(150.0, problems=(problem,)))
    assert ids(findings) == ["dose-above-maximum"]
    assert findings[0].params["problems"] == "150 mg is not a whole number of 125 mg tablets"


@pytest.mark.parametrize(
    ("daily", "suggested"), [(112.5, "100"), (80.0, "75"), (124.0, "100"), (99.0, "75"), (76.0, "75")]
)
def test_nonstandard_suggests_the_labelled_dose_below(daily: float, suggested: str) -> None:
    finding = only(run(schedule(daily)), "dose-nonstandard")
    assert finding.params["suggested_dose_mg"] == suggested
    assert f"{daily:g} mg/day is not a labelled dose level" in finding.params["dose_issue"]


def test_per_dose_nonstandard_when_the_frequency_is_unknown() -> None:
    finding = only(run(schedule(112.5, None)), "dose-nonstandard")
    assert finding.params["dose_issue"] == "112.5 mg per dose is not a labelled dose (125, 100 or 75 mg once daily)"
    assert finding.params["suggested_dose_mg"] == "100"
    assert only(run(schedule(50.0, None)), "dose-nonstandard").params["suggested_dose_mg"] == ""


def test_strength_mismatch_raises_nonstandard_with_the_labelled_dose_as_suggestion() -> None:
    problem = f"{DOSE_PROBLEM}125 mg is not a whole number of 100 mg tablets"
    finding = only(run(schedule(125.0, problems=(problem,)), product=TAB_100), "dose-nonstandard")
    assert finding.params["dose_issue"] == "125 mg is not a whole number of 100 mg tablets"
    assert finding.params["suggested_dose_mg"] == "125"


def test_uninterpretable_dose_raises_nonstandard_without_a_suggestion() -> None:
    problem = f"{DOSE_PROBLEM}the dose 1.4 (no unit) has no unit"
    finding = only(run(schedule(None, problems=(problem,))), "dose-nonstandard")
    assert finding.params["suggested_dose_mg"] == ""
    assert finding.params["daily_dose"] == "not computable"


def test_schedule_problems_are_not_dose_problems() -> None:
    problem = f"{SCHEDULE_PROBLEM}the text says twice daily but the coded timing says once daily"
    findings = run(schedule(125.0, problems=(problem,)))
    assert ids(findings) == ["schedule-not-21-7"]
    assert "twice daily" in findings[0].params["schedule_issues"]


# --------------------------------------------------------------------------------------------- schedule


@pytest.mark.parametrize(
    ("sched", "issue"),
    [
        (schedule(days_on=28, cycle=28, continuous=True), "dosing on 28 of 28 days: continuous"),
        (schedule(days_on=None, cycle=None, continuous=True), "continuous daily dosing"),
        (schedule(days_on=21, cycle=21, continuous=True), "dosing on 21 of 21 days"),
        (schedule(days_on=14, cycle=21), "14 days on in a 21-day cycle"),
        (schedule(days_on=14, cycle=None), "14 dosing days instead of 21"),
        (schedule(days_on=None, cycle=21), "a 21-day cycle instead of 28 days"),
        (schedule(days_on=None, cycle=28), "dosing days (days 1-21) are not stated"),
        (
            schedule(days_on=None, cycle=28, encoding="expected-supply-duration"),
            "dosing days (days 1-21) are not stated",
        ),
        (schedule(days_on=None, cycle=None), "no days-on / days-off schedule is stated"),
        (schedule(62.5, 2.0), "taken twice daily; the label is once daily"),
        (schedule(125.0, None), "how often per day is not stated"),
    ],
)
def test_schedule_issues(sched: DoseSchedule, issue: str) -> None:
    finding = only(run(sched), "schedule-not-21-7")
    assert issue in finding.params["schedule_issue"]


@pytest.mark.parametrize(
    "sched",
    [
        schedule(),
        schedule(days_on=21, cycle=None),
        schedule(days_on=None, cycle=28, encoding="text"),
        schedule(100.0),
        schedule(125.0, 2.0),
        schedule(50.0, 0.5),
    ],
    ids=[
        "21-of-28",
        "21-days-cycle-implicit",
        "q28d-in-text",
        "100-labelled",
        "bid-reported-by-dose-card",
        "qod-below-minimum",
    ],
)
def test_no_schedule_card(sched: DoseSchedule) -> None:
    assert "schedule-not-21-7" not in ids(run(sched))


def test_no_dosage_instruction_warns_once() -> None:
    findings = run(None)
    assert ids(findings) == ["schedule-not-21-7"]
    assert "no dosage instructions" in findings[0].params["schedule_issue"]
    assert findings[0].params["labelled_dose_mg"] == ""


def test_site_can_turn_off_the_unstated_schedule_warning() -> None:
    off: dict[str, Threshold] = {"warn_when_schedule_unstated": False}
    assert run(schedule(days_on=None, cycle=None), thresholds=off) == []
    assert run(None, thresholds=off) == []
    assert ids(run(schedule(days_on=28, cycle=28, continuous=True), thresholds=off)) == ["schedule-not-21-7"]


@pytest.mark.parametrize(
    ("sched", "labelled"),
    [
        (schedule(days_on=28, continuous=True), "125"),
        (schedule(100.0, days_on=28, continuous=True), "100"),
        (schedule(150.0, days_on=28, continuous=True), ""),
    ],
)
def test_schedule_suggestion_keeps_only_a_labelled_dose(sched: DoseSchedule, labelled: str) -> None:
    finding = only(run(sched), "schedule-not-21-7")
    assert finding.params["labelled_dose_mg"] == labelled


def test_dose_and_schedule_problems_both_fire() -> None:
    assert sorted(ids(run(schedule(150.0, days_on=28, continuous=True)))) == [
        "dose-above-maximum",
        "schedule-not-21-7",
    ]


# --------------------------------------------------------------------------------------------- reduced start


@pytest.mark.parametrize(
    ("medications", "conditions", "fires"),
    [
        ((), (), True),
        ((med("palbociclib", ("cdk46-inhibitor",), status="completed"),), (), False),
        ((med("palbociclib", ("cdk46-inhibitor",), source="statement", status="stopped"),), (), False),
        ((med("palbociclib", ("cdk46-inhibitor",), source="statement", status="not-taken"),), (), True),
        ((med("palbociclib", ("cdk46-inhibitor",), source="draft", status="draft"),), (), True),
        ((med("itraconazole", ("strong-cyp3a-inhibitor",)),), (), False),
        ((med("clarithromycin", ("strong-cyp3a-inhibitor",), source="draft", status="draft"),), (), False),
        ((med("itraconazole", ("strong-cyp3a-inhibitor",), status="stopped"),), (), True),
        ((), (condition("severe-hepatic-impairment"),), False),
        ((), (condition("severe-hepatic-impairment", "resolved"),), True),
        ((), (condition("breast-cancer"),), True),
    ],
    ids=[
        "first-order",
        "past-palbociclib-order",
        "past-palbociclib-on-med-list",
        "palbociclib-never-taken",
        "another-palbociclib-draft",
        "strong-cyp3a-inhibitor-active",
        "strong-cyp3a-inhibitor-co-ordered",
        "strong-cyp3a-inhibitor-stopped",
        "severe-hepatic-impairment",
        "severe-hepatic-impairment-resolved",
        "unrelated-condition",
    ],
)
def test_reduced_start_depends_on_history_inhibitors_and_liver(
    medications: tuple[MedicationUse, ...], conditions: tuple[CodedFact, ...], fires: bool
) -> None:
    findings = run(schedule(100.0), snapshot(*medications, conditions=conditions))
    assert ("reduced-start-dose" in ids(findings)) is fires


@pytest.mark.parametrize(
    ("labs", "conditions", "fires"),
    [
        ((child_pugh("C", datetime(2026, 11, 1, tzinfo=UTC)),), (), False),
        ((child_pugh("B", datetime(2026, 11, 1, tzinfo=UTC)),), (), True),
        ((child_pugh("A", datetime(2026, 11, 1, tzinfo=UTC)),), (condition("severe-hepatic-impairment"),), True),
    ],
    ids=["child-pugh-c-observation", "child-pugh-b-observation", "newer-class-a-outweighs-undated-condition"],
)
def test_reduced_start_reads_child_pugh_as_the_hepatic_rule_does(
    labs: tuple[LabResult, ...], conditions: tuple[CodedFact, ...], fires: bool
) -> None:
    findings = run(schedule(75.0), snapshot(conditions=conditions, labs=labs))
    assert ("reduced-start-dose" in ids(findings)) is fires


@pytest.mark.parametrize(
    ("reasons", "fires"),
    [
        ((), True),
        (("Malignant neoplasm of unspecified site of left female breast",), True),
        (("Metastatic breast cancer, HR+/HER2-",), True),
        (("C50.912",), True),
        (("Reduced start: grade 4 neutropenia on a prior course",), False),
        (("Breast cancer; dose reduced for frailty (ECOG 2)",), False),
        (("Patient preference after discussion",), False),
        (("Child-Pugh C cirrhosis",), False),
    ],
)
def test_reduced_start_ignores_a_reason_that_only_names_the_indication(reasons: tuple[str, ...], fires: bool) -> None:
    findings = run(schedule(75.0), reasons=reasons)
    assert ("reduced-start-dose" in ids(findings)) is fires


def test_reduced_start_card_says_what_was_checked() -> None:
    finding = only(run(schedule(100.0), reasons=("Metastatic breast cancer",)), "reduced-start-dose")
    assert finding.params["daily_dose"] == "100 mg/day"
    assert "names the indication (Metastatic breast cancer)" in finding.params["checked"]


@pytest.mark.parametrize("daily", [125.0, 112.5, 50.0])
def test_reduced_start_only_at_100_or_75(daily: float) -> None:
    assert "reduced-start-dose" not in ids(run(schedule(daily)))


# --------------------------------------------------------------------------------------------- from FHIR to cards


@pytest.mark.parametrize(
    ("dosage", "expected"),
    [
        (
            {
                "text": "125 mg once daily days 1-21 q28d",
                "doseAndRate": [{"doseQuantity": {"value": 125, "code": "mg"}}],
            },
            [],
        ),
        (
            {
                "text": "125 mg twice daily days 1-21 q28d",
                "doseAndRate": [{"doseQuantity": {"value": 125, "code": "mg"}}],
            },
            ["dose-above-maximum"],
        ),
        (
            {"text": "125 mg daily, continuous", "doseAndRate": [{"doseQuantity": {"value": 125, "code": "mg"}}]},
            ["schedule-not-21-7"],
        ),
        (
            {
                "text": "days 1-21 q28d",
                "timing": {"code": {"coding": [{"code": "QD"}]}},
                "doseAndRate": [{"doseQuantity": {"value": 1.25}}],
            },
            ["dose-nonstandard"],
        ),
        (
            {"text": "125 mg once daily q28d", "doseAndRate": [{"doseQuantity": {"value": 125, "code": "mg"}}]},
            [],
        ),
        (
            {
                "text": "125 mg once daily",
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": 125, "code": "mg"}}],
            },
            ["schedule-not-21-7"],
        ),
    ],
    ids=["labelled", "bid", "continuous", "dose-without-unit", "q28d-text-only", "no-schedule"],
)
def test_from_a_fhir_order(dosage: dict[str, Any], expected: list[str]) -> None:
    details = describe_order({"resourceType": "MedicationRequest", "dosageInstruction": [dosage]}, TAB_125)
    findings = [f for f in run(details.schedule) if f.rule_id != "reduced-start-dose"]
    assert ids(findings) == expected


def card(rule_id: str) -> CardEntry:
    return CardEntry.model_validate(yaml.safe_load((CARDS / f"{rule_id}.yaml").read_text()))


def test_every_card_param_is_given_by_the_rule() -> None:
    cases = [schedule(150.0), schedule(50.0), schedule(112.5), schedule(days_on=28, continuous=True), schedule(100.0)]
    findings = [f for sched in cases for f in run(sched)]
    assert {f.rule_id for f in findings} == {card for rule in dose.RULES for card in rule.fires}
    for finding in findings:
        assert set(card(finding.rule_id).params) <= set(finding.params), finding.rule_id


def test_rule_declarations() -> None:
    by_name = {rule.name: rule for rule in dose.RULES}
    assert by_name["dose-level"].needs == frozenset()
    assert by_name["dose-schedule"].thresholds == {"warn_when_schedule_unstated": True}
    assert by_name["reduced-start-dose"].needs == {
        "medicationRequests",
        "medicationStatements",
        "medicationHistory",
        "conditions",
        "childPugh",
    }
    for rule in dose.RULES:
        assert len({card(rule_id).title for rule_id in rule.fires}) == 1, rule.name
