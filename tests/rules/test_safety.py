"""The safety rules (pregnancy, pregnancy test, breastfeeding, severe hepatic impairment, ILD/pneumonitis,
dialysis) on snapshots built directly, and on FHIR JSON through build_snapshot for the value-set codes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cds_service.prefetch.model import KeyOutcome, PatientData
from cds_service.rules import RULES as ALL_RULES
from cds_service.rules import safety, safety_organs, safety_pregnancy
from cds_service.rules.base import Finding, Threshold
from cds_service.rules.menopause import menopausal_status
from cds_service.snapshot.build import build_snapshot
from cds_service.snapshot.model import (
    Code,
    CodedFact,
    DoseSchedule,
    Evidence,
    LabResult,
    MedicationSource,
    MedicationUse,
    OrderDetails,
    PalbociclibOrder,
    PatientSnapshot,
)
from cds_service.terminology import SYSTEMS, load_valuesets
from tests.rules.builders import medication_use

AS_OF = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
SNOMED = SYSTEMS["snomed"]


def ago(days: float) -> datetime:
    return AS_OF - timedelta(days=days)


def lab(
    concept: str,
    days: float | None,
    *,
    results: Iterable[str] = (),
    value: float | None = None,
    high: float | None = None,
    rid: str = "obs-1",
) -> LabResult:
    when = ago(days) if days is not None else None
    return LabResult(
        concept=concept,
        effective=when,
        value=value,
        unit="[IU]/L" if value is not None else None,
        interpretable=True,
        original=f"{value}" if value is not None else ", ".join(results),
        result_concepts=frozenset(results),
        reference_high=high,
        evidence=Evidence("Observation", rid, when, f"{concept}: {', '.join(results) or value}"),
    )


def fact(
    *concepts: str,
    days: float | None = 10,
    status: str | None = "active",
    verification: str | None = "confirmed",
    severity: Iterable[Code] = (),
    severity_text: str | None = None,
    kind: str = "Condition",
    rid: str = "c-1",
) -> CodedFact:
    when = ago(days) if days is not None else None
    return CodedFact(
        concepts=frozenset(concepts),
        codes=(),
        text=concepts[0] if concepts else None,
        status=status,
        date=when,
        evidence=Evidence(kind, rid, when, f"{concepts[0] if concepts else kind}"),
        verification=verification,
        severity=tuple(severity),
        severity_text=severity_text,
    )


def med(ingredient: str, source: MedicationSource, status: str | None, groups: Iterable[str] = ()) -> MedicationUse:
    return medication_use(ingredient, groups, source, status, started=ago(30), rid=f"mr-{ingredient}")


def snap(
    *,
    sex: Any = "female",
    age: int | None = 34,
    conditions: Iterable[CodedFact] = (),
    procedures: Iterable[CodedFact] = (),
    medications: Iterable[MedicationUse] = (),
    labs: Iterable[LabResult] = (),
) -> PatientSnapshot:
    ordered = sorted(labs, key=lambda x: -(x.effective or datetime(1, 1, 1, tzinfo=UTC)).timestamp())
    return PatientSnapshot(
        as_of=AS_OF,
        patient_id="p-1",
        sex=sex,
        birth_date=None,
        age_years=age,
        conditions=tuple(conditions),
        procedures=tuple(procedures),
        medications=tuple(medications),
        labs=tuple(ordered),
    )


def order(daily_mg: float | None = 125.0, *, schedule: bool = True) -> PalbociclibOrder:
    details = OrderDetails(
        schedule=DoseSchedule(
            dose_mg=daily_mg,
            administrations_per_day=1,
            daily_dose_mg=daily_mg,
            days_on=21,
            cycle_days=28,
            continuous=False,
            encoding="bounds-duration",
            original=f"{daily_mg} mg daily",
        )
        if schedule
        else None
    )
    return PalbociclibOrder(
        resource_id="draft-1",
        status="draft",
        product=None,
        matched_by="ingredient",
        text="palbociclib",
        evidence=Evidence("MedicationRequest", "draft-1", AS_OF, "palbociclib (draft order)"),
        details=details,
    )


def ids(findings: list[Finding]) -> list[str]:
    return [f.rule_id for f in findings]


def pregnancy(snapshot: PatientSnapshot, **thresholds: Threshold) -> list[str]:
    return ids(safety_pregnancy.evaluate_pregnancy(snapshot, order(), thresholds))


def test_safety_exports_every_rule_once_and_the_pipeline_runs_them() -> None:
    names = [r.name for r in safety.RULES]
    assert names == [
        "pregnancy",
        "pregnancy-test",
        "breastfeeding",
        "hepatic-impairment",
        "ild-pneumonitis",
        "renal-dialysis",
    ]
    assert {card for r in safety.RULES for card in r.fires} == {
        "pregnancy",
        "pregnancy-test-missing",
        "breastfeeding",
        "hepatic-impairment-severe",
        "ild-pneumonitis",
        "renal-dialysis",
    }
    assert all(any(rule is other for other in ALL_RULES) for rule in safety.RULES)


@pytest.mark.parametrize(
    ("rule", "needs"),
    [
        ("pregnancy", {"patient", "conditions", "pregnancyTests", "reproductiveStatus"}),
        ("breastfeeding", {"conditions", "reproductiveStatus"}),
        ("hepatic-impairment", {"conditions", "childPugh"}),
        ("ild-pneumonitis", {"conditions"}),
        ("renal-dialysis", {"conditions", "procedures"}),
    ],
)
def test_rules_need_only_what_they_read(rule: str, needs: set[str]) -> None:
    assert next(r for r in safety.RULES if r.name == rule).needs == needs


# ---------------------------------------------------------------------------------------------- pregnancy
@pytest.mark.parametrize(
    ("labs", "expected"),
    [
        ([lab("hcg-urine-qualitative", 3, results={"positive"})], ["pregnancy"]),
        ([lab("hcg-serum-qualitative", 3, results={"detected"})], ["pregnancy"]),
        ([lab("hcg-urine-qualitative", 40, results={"positive"})], []),  # outside the 30-day window
        ([lab("hcg-urine-qualitative", None, results={"positive"})], []),  # undated: cannot be placed
        ([lab("hcg-urine-qualitative", 3, results={"equivocal"})], []),
        ([lab("hcg-urine-qualitative", 3, results={"negative"})], []),
        # a later negative test supersedes; an earlier one does not
        (
            [
                lab("hcg-urine-qualitative", 10, results={"positive"}, rid="a"),
                lab("hcg-serum-qualitative", 2, results={"negative"}, rid="b"),
            ],
            [],
        ),
        (
            [
                lab("hcg-urine-qualitative", 10, results={"negative"}, rid="a"),
                lab("hcg-urine-qualitative", 2, results={"positive"}, rid="b"),
            ],
            ["pregnancy"],
        ),
        # quantitative: the lab's upper reference limit, else 5 IU/L
        ([lab("hcg-serum-quantitative", 1, value=20.0)], ["pregnancy"]),
        ([lab("hcg-serum-quantitative", 1, value=3.0)], []),
        ([lab("hcg-serum-quantitative", 1, value=5.0)], []),
        ([lab("hcg-serum-quantitative", 1, value=8.0, high=10.0)], []),
        ([lab("hcg-serum-quantitative", 1, value=12.0, high=10.0)], ["pregnancy"]),
        # a quantitative result without a usable value falls back on its interpretation
        ([lab("hcg-serum-quantitative", 1, results={"positive"})], ["pregnancy"]),
        # pregnancy-status observations
        ([lab("pregnancy-status", 5, results={"status-pregnant"})], ["pregnancy"]),
        (
            [
                lab("pregnancy-status", 20, results={"status-pregnant"}, rid="a"),
                lab("pregnancy-status", 1, results={"status-not-pregnant"}, rid="b"),
            ],
            [],
        ),
    ],
)
def test_pregnancy_from_tests_and_status(labs: list[LabResult], expected: list[str]) -> None:
    assert pregnancy(snap(labs=labs)) == expected


def test_site_can_raise_the_quantitative_hcg_cut_off() -> None:
    snapshot = snap(labs=[lab("hcg-serum-quantitative", 1, value=20.0)])
    assert pregnancy(snapshot, hcg_positive_above_iu_per_l=25) == []
    assert pregnancy(snapshot, positive_test_within_days=30) == ["pregnancy"]


@pytest.mark.parametrize(
    ("conditions", "labs", "expected"),
    [
        ([fact("pregnancy", days=14)], [], ["pregnancy"]),
        ([fact("pregnancy", days=None)], [], ["pregnancy"]),  # undated but active
        ([fact("pregnancy", days=None, status=None)], [], ["pregnancy"]),  # no clinical status: present
        ([fact("pregnancy", days=14, status="resolved")], [], []),
        ([fact("pregnancy", days=400)], [], []),  # older than any pregnancy lasts
        ([fact("pregnancy", days=14)], [lab("hcg-serum-quantitative", 2, value=1.0)], []),  # later negative
        ([fact("pregnancy", days=1)], [lab("hcg-urine-qualitative", 5, results={"negative"})], ["pregnancy"]),
        ([fact("pregnancy", days=30), fact("not-pregnant", days=2, rid="c-2")], [], []),
    ],
)
def test_pregnancy_from_conditions(conditions: list[CodedFact], labs: list[LabResult], expected: list[str]) -> None:
    assert pregnancy(snap(conditions=conditions, labs=labs)) == expected


def test_pregnancy_card_names_the_records_with_dates_and_evidence() -> None:
    positive = lab("hcg-urine-qualitative", 3, results={"positive"})
    [finding] = safety_pregnancy.evaluate_pregnancy(snap(labs=[positive]), order(), {})
    assert finding.evidence == (positive.evidence,)
    assert "2026-11-17" in finding.params["found"]


def test_hcg_in_a_man_is_not_a_pregnancy() -> None:
    assert pregnancy(snap(sex="male", labs=[lab("hcg-serum-quantitative", 1, value=50.0)])) == []


# ---------------------------------------------------------------------------------------------- pregnancy test
def missing_test_card(snapshot: PatientSnapshot, **thresholds: Threshold) -> list[Finding]:
    return safety_pregnancy.evaluate_pregnancy_test(snapshot, order(), thresholds)


@pytest.mark.parametrize(
    ("kwargs", "fires"),
    [
        ({}, True),
        ({"age": 49}, True),
        ({"age": 50}, False),
        ({"age": None}, False),
        ({"sex": "male"}, False),
        ({"sex": "unknown"}, False),
        ({"medications": [med("goserelin", "request", "active", ["lhrh-agonist"])]}, True),  # suppressed, fertile
        # sterilisation
        ({"procedures": [fact("hysterectomy", kind="Procedure", status="completed")]}, False),
        ({"procedures": [fact("hysterectomy", kind="Procedure", status="not-done")]}, True),
        ({"procedures": [fact("tubal-sterilisation", kind="Procedure", status="completed")]}, False),
        ({"conditions": [fact("hysterectomy-status")]}, False),
        ({"conditions": [fact("tubal-ligation-status")]}, False),
        ({"conditions": [fact("bilateral-oophorectomy-status", "postmenopausal")]}, False),
        # not a first start
        ({"medications": [med("palbociclib", "request", "completed")]}, False),
        ({"medications": [med("palbociclib", "statement", "stopped")]}, False),
        ({"medications": [med("palbociclib", "request", "active")]}, False),
        ({"medications": [med("palbociclib", "draft", "draft")]}, True),  # another draft is not a past order
        # tests
        ({"labs": [lab("hcg-urine-qualitative", 3, results={"negative"})]}, False),
        ({"labs": [lab("hcg-serum-quantitative", 6, value=1.0)]}, False),
        ({"labs": [lab("hcg-urine-qualitative", 10, results={"negative"})]}, True),
        ({"labs": [lab("hcg-urine-qualitative", 3, results={"indeterminate"})]}, True),
        ({"labs": [lab("hcg-urine-qualitative", 3, results={"positive"})]}, False),  # the pregnancy card speaks
    ],
)
def test_pregnancy_test_before_start(kwargs: dict[str, Any], fires: bool) -> None:
    assert ids(missing_test_card(snap(**kwargs))) == (["pregnancy-test-missing"] if fires else [])


def test_postmenopausal_women_need_no_test() -> None:
    """Below the age cut-off, the menopausal status decides: recorded postmenopausal needs no test,
    recorded perimenopausal does."""
    postmenopausal = snap(age=45, conditions=[fact("postmenopausal")])
    perimenopausal = snap(age=45, conditions=[fact("perimenopausal")])
    assert menopausal_status(postmenopausal).state == "postmenopausal"
    assert menopausal_status(perimenopausal).state == "perimenopausal"
    assert missing_test_card(postmenopausal) == []
    assert ids(missing_test_card(perimenopausal)) == ["pregnancy-test-missing"]


def test_pregnancy_test_card_says_what_it_found_and_obeys_site_windows() -> None:
    old = lab("hcg-urine-qualitative", 10, results={"negative"})
    [finding] = missing_test_card(snap(labs=[old]))
    assert finding.params["days"] == "7"
    assert finding.params["age"] == "34"
    assert "2026-11-10" in finding.params["last_test"]
    assert old.evidence in finding.evidence
    assert missing_test_card(snap(labs=[old]), negative_test_within_days=14) == []
    assert missing_test_card(snap(age=52), reproductive_age_below=55) != []
    [none] = missing_test_card(snap())
    assert none.params["last_test"] == "none on record"


# ---------------------------------------------------------------------------------------------- breastfeeding
@pytest.mark.parametrize(
    ("conditions", "labs", "fires"),
    [
        ([fact("lactation")], [], True),
        ([fact("lactation", status="resolved")], [], False),
        ([], [lab("breastfeeding-status", 10, results={"status-breastfeeding"})], True),
        ([], [lab("breastfeeding-status", 400, results={"status-breastfeeding"})], False),  # stale answer
        ([], [lab("breastfeeding-status", 10, results={"status-not-breastfeeding"})], False),
        ([fact("lactation", days=150)], [lab("breastfeeding-status", 10, results={"status-not-breastfeeding"})], False),
        ([fact("lactation", days=5)], [lab("breastfeeding-status", 10, results={"status-not-breastfeeding"})], True),
        ([fact("lactation", days=None)], [lab("breastfeeding-status", 10, results={"status-not-breastfeeding"})], True),
    ],
)
def test_breastfeeding(conditions: list[CodedFact], labs: list[LabResult], fires: bool) -> None:
    findings = safety_pregnancy.evaluate_breastfeeding(snap(conditions=conditions, labs=labs), order(), {})
    assert ids(findings) == (["breastfeeding"] if fires else [])


def test_breastfeeding_site_window() -> None:
    snapshot = snap(labs=[lab("breastfeeding-status", 400, results={"status-breastfeeding"})])
    assert ids(safety_pregnancy.evaluate_breastfeeding(snapshot, order(), {"status_max_age_days": 500})) == [
        "breastfeeding"
    ]


# ---------------------------------------------------------------------------------------------- hepatic
def cp(klass: str, days: float, rid: str = "cp-1") -> LabResult:
    return lab("child-pugh-class", days, results={f"child-pugh-{klass}"}, rid=rid)


@pytest.mark.parametrize(
    ("conditions", "labs", "daily", "fires"),
    [
        ([], [cp("c", 8)], 125.0, True),
        ([], [cp("c", 8)], 100.0, True),
        ([], [cp("c", 8)], 75.0, False),
        ([], [cp("c", 8)], None, True),  # dose unknown: still warn
        ([], [cp("b", 8)], 125.0, False),
        ([], [cp("a", 8)], 125.0, False),
        ([], [cp("b", 2, "new"), cp("c", 30, "old")], 125.0, False),  # the newest class leads
        ([], [cp("c", 2, "new"), cp("b", 30, "old")], 125.0, True),
        ([fact("severe-hepatic-impairment", days=20)], [], 125.0, True),
        ([fact("severe-hepatic-impairment", days=20, status="resolved")], [], 125.0, False),
        ([fact("severe-hepatic-impairment", days=40)], [cp("b", 5)], 125.0, False),
        ([fact("severe-hepatic-impairment", days=5)], [cp("b", 40)], 125.0, True),
        ([fact("severe-hepatic-impairment", days=None)], [cp("b", 40)], 125.0, False),
        ([fact("severe-hepatic-impairment", days=10)], [cp("b", 10)], 125.0, False),  # same day: the class leads
        ([fact("cirrhosis", days=5)], [], 125.0, False),  # cirrhosis alone is not class C
        ([], [lab("child-pugh-class", 3, results={"child-pugh-b", "child-pugh-c"})], 125.0, False),  # ambiguous
    ],
)
def test_child_pugh_c(conditions: list[CodedFact], labs: list[LabResult], daily: float | None, fires: bool) -> None:
    findings = safety_organs.evaluate_hepatic(snap(conditions=conditions, labs=labs), order(daily), {})
    assert ids(findings) == (["hepatic-impairment-severe"] if fires else [])


def test_child_pugh_card_params() -> None:
    [finding] = safety_organs.evaluate_hepatic(snap(labs=[cp("c", 8)]), order(125.0), {})
    assert finding.params["dose"] == "125 mg per day"
    assert "Observation" in {e.resource_type for e in finding.evidence}
    [unknown] = safety_organs.evaluate_hepatic(snap(labs=[cp("c", 8)]), order(schedule=False), {})
    assert unknown.params["dose"] == "not stated in the order"


# ---------------------------------------------------------------------------------------------- ILD
SEVERE = Code(SNOMED, "24484000", "Severe")
LIFE_THREATENING = Code("urn:oid:2.16.840.1.113883.6.96", "442452003", "Life threatening severity")
MILD = Code(SNOMED, "255604002", "Mild")


@pytest.mark.parametrize(
    ("conditions", "indicator"),
    [
        ([fact("interstitial-lung-disease", severity=[SEVERE])], "critical"),
        ([fact("pneumonitis", severity=[LIFE_THREATENING])], "critical"),
        ([fact("interstitial-lung-disease", severity_text="CTCAE grade 3")], "critical"),
        ([fact("interstitial-lung-disease", severity_text="Severe")], "critical"),
        ([fact("interstitial-lung-disease", severity_text="grade 2")], "warning"),
        ([fact("interstitial-lung-disease", severity=[MILD])], "warning"),
        ([fact("interstitial-lung-disease")], "warning"),  # severity not recorded
        ([fact("pneumonitis", severity=[SEVERE], verification="provisional")], "warning"),  # suspected
        ([fact("pneumonitis", severity=[SEVERE], verification="differential")], "warning"),
        ([fact("interstitial-lung-disease", status="resolved", severity=[SEVERE])], None),
        ([fact("interstitial-lung-disease", status="inactive")], None),
        ([fact("neutropenia", severity=[SEVERE])], None),
        (
            [
                fact("pneumonitis", severity=[MILD], rid="mild"),
                fact("interstitial-lung-disease", severity=[SEVERE], rid="severe"),
            ],
            "critical",
        ),
    ],
)
def test_ild_pneumonitis(conditions: list[CodedFact], indicator: str | None) -> None:
    findings = safety_organs.evaluate_ild(snap(conditions=conditions), order(), {})
    assert [(f.rule_id, f.indicator) for f in findings] == ([("ild-pneumonitis", indicator)] if indicator else [])


def test_severe_ild_card_shows_only_the_severe_record() -> None:
    mild = fact("pneumonitis", severity=[MILD], rid="mild")
    severe = fact("interstitial-lung-disease", severity=[SEVERE], rid="severe")
    [finding] = safety_organs.evaluate_ild(snap(conditions=[mild, severe]), order(), {})
    assert finding.evidence == (severe.evidence,)
    assert finding.params["severity"] == "severity: Severe; verification: confirmed"


# ---------------------------------------------------------------------------------------------- dialysis
@pytest.mark.parametrize(
    ("conditions", "procedures", "fires"),
    [
        ([fact("dialysis-dependence")], [], True),
        ([fact("dialysis-dependence", status="resolved")], [], False),
        ([], [fact("haemodialysis", kind="Procedure", status="completed", days=3)], True),
        ([], [fact("haemodialysis", kind="Procedure", status="completed", days=60)], False),
        ([], [fact("haemodialysis", kind="Procedure", status="completed", days=None)], False),
        ([], [fact("haemodialysis", kind="Procedure", status="not-done", days=3)], False),
        ([], [], False),
    ],
)
def test_dialysis(conditions: list[CodedFact], procedures: list[CodedFact], fires: bool) -> None:
    snapshot = snap(conditions=conditions, procedures=procedures)
    assert ids(safety_organs.evaluate_dialysis(snapshot, order(), {})) == (["renal-dialysis"] if fires else [])


def test_dialysis_site_window() -> None:
    snapshot = snap(procedures=[fact("haemodialysis", kind="Procedure", status="completed", days=60)])
    assert ids(safety_organs.evaluate_dialysis(snapshot, order(), {"procedure_within_days": 90})) == ["renal-dialysis"]


# ---------------------------------------------------------------------------------------------- value sets
def test_severity_codes_match_the_value_set_file() -> None:
    concept = load_valuesets().concept("severity-severe", "result_values")
    assert concept is not None
    assert {code for _, code in concept.prefetch_codes} == safety_organs.SEVERE_SEVERITY_CODES
    assert SNOMED in safety_organs.SNOMED_SYSTEMS


def _snapshot_from_fhir(**keys: Iterable[Mapping[str, Any]]) -> PatientSnapshot:
    patient = {"resourceType": "Patient", "id": "p-1", "gender": "female", "birthDate": "1992-02-11"}
    resources = {"patient": (patient,), **{k: tuple(dict(r) for r in v) for k, v in keys.items()}}
    data = PatientData(resources=resources, outcomes={k: KeyOutcome(k, "prefetched") for k in resources})
    return build_snapshot(
        data, patient_id="p-1", draft_orders=[], evaluated_orders=[], as_of=AS_OF, vs=load_valuesets()
    )


def _obs(code: str, value: dict[str, Any], when: str = "2026-11-15T09:00:00Z") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": f"o-{code}",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": "Patient/p-1"},
        "effectiveDateTime": when,
        **value,
    }


@pytest.mark.parametrize(
    ("observation", "rule", "expected"),
    [
        (_obs("98153-0", {"valueString": "C"}), safety_organs.evaluate_hepatic, ["hepatic-impairment-severe"]),
        (
            _obs("98153-0", {"valueCodeableConcept": {"text": "Child-Pugh class C"}}),
            safety_organs.evaluate_hepatic,
            ["hepatic-impairment-severe"],
        ),
        (_obs("98153-0", {"valueString": "B"}), safety_organs.evaluate_hepatic, []),
        (
            _obs(
                "82810-3", {"valueCodeableConcept": {"coding": [{"system": "http://loinc.org", "code": "LA15173-0"}]}}
            ),
            safety_pregnancy.evaluate_pregnancy,
            ["pregnancy"],
        ),
        (
            _obs("82810-3", {"valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "77386006"}]}}),
            safety_pregnancy.evaluate_pregnancy,
            ["pregnancy"],
        ),
        (
            _obs(
                "63895-7", {"valueCodeableConcept": {"coding": [{"system": "http://loinc.org", "code": "LA29252-6"}]}}
            ),
            safety_pregnancy.evaluate_breastfeeding,
            ["breastfeeding"],
        ),
        (
            _obs(
                "63895-7", {"valueCodeableConcept": {"coding": [{"system": "http://loinc.org", "code": "LA29253-4"}]}}
            ),
            safety_pregnancy.evaluate_breastfeeding,
            [],
        ),
        (
            _obs(
                "21198-7",
                {
                    "valueQuantity": {
                        "value": 40,
                        "unit": "mIU/mL",
                        "system": "http://unitsofmeasure.org",
                        "code": "m[IU]/mL",
                    }
                },
            ),
            safety_pregnancy.evaluate_pregnancy,
            ["pregnancy"],
        ),
    ],
)
def test_value_set_codes_reach_the_rules(observation: dict[str, Any], rule: Any, expected: list[str]) -> None:
    snapshot = _snapshot_from_fhir(reproductiveStatus=[observation])
    assert ids(rule(snapshot, order(), {})) == expected


@pytest.mark.parametrize(
    ("resource", "rule", "expected"),
    [
        (
            {"resourceType": "Condition", "code": {"coding": [{"system": SYSTEMS["icd10cm"], "code": "K72.11"}]}},
            safety_organs.evaluate_hepatic,
            ["hepatic-impairment-severe"],
        ),
        (
            {"resourceType": "Condition", "code": {"coding": [{"system": SNOMED, "code": "205237003"}]}},
            safety_organs.evaluate_ild,
            ["ild-pneumonitis"],
        ),
        (
            {
                "resourceType": "Procedure",
                "status": "completed",
                "performedDateTime": "2026-11-18",
                "code": {"coding": [{"system": SNOMED, "code": "302497006"}]},
            },
            safety_organs.evaluate_dialysis,
            ["renal-dialysis"],
        ),
    ],
)
def test_condition_and_procedure_codes_reach_the_rules(
    resource: dict[str, Any], rule: Any, expected: list[str]
) -> None:
    resource = {"id": "r-1", "subject": {"reference": "Patient/p-1"}, **resource}
    snapshot = _snapshot_from_fhir(conditions=[resource])
    assert ids(rule(snapshot, order(), {})) == expected


@pytest.mark.parametrize(
    "coding",
    [
        {"system": SYSTEMS["icd10cm"], "code": "Z90.710"},
        {"system": SYSTEMS["icd10cm"], "code": "Z98.51"},
        {"system": SNOMED, "code": "116140006"},
        {"system": SNOMED, "code": "287664005"},
    ],
)
def test_sterilisation_codes_reach_the_pregnancy_test_rule(coding: dict[str, str]) -> None:
    kind = "Procedure" if coding["system"] == SNOMED else "Condition"
    resource = {
        "resourceType": kind,
        "id": "r-1",
        "subject": {"reference": "Patient/p-1"},
        "code": {"coding": [coding]},
    }
    if kind == "Procedure":
        resource["status"] = "completed"
    assert ids(safety_pregnancy.evaluate_pregnancy_test(_snapshot_from_fhir(conditions=[]), order(), {})) == [
        "pregnancy-test-missing"
    ]
    snapshot = _snapshot_from_fhir(conditions=[resource])
    assert safety_pregnancy.evaluate_pregnancy_test(snapshot, order(), {}) == []
