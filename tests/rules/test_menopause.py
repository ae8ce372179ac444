"""Menopausal status (clinical brief §4.4) derived from hand-built snapshots, and from FHIR JSON through
build_snapshot for the value-set codes it reads."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cds_service.prefetch.model import KeyOutcome, PatientData
from cds_service.rules.menopause import (
    DEFAULT_CRITERIA,
    THRESHOLDS,
    MenopauseCriteria,
    add_months,
    last_menstrual_period,
    menopausal_status,
    whole_months,
)
from cds_service.snapshot.build import build_snapshot
from cds_service.snapshot.model import (
    CodedFact,
    Evidence,
    LabResult,
    MedicationSource,
    MedicationUse,
    PatientSnapshot,
    Sex,
)
from cds_service.terminology import SYSTEMS, load_valuesets
from tests.rules.builders import medication_use

AS_OF = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
GROUPS = {
    "letrozole": {"aromatase-inhibitor"},
    "tamoxifen": {"serm"},
    "toremifene": {"serm"},
    "goserelin": {"lhrh-agonist"},
    "leuprolide": {"lhrh-agonist"},
}


def months_ago(months: int, days: int = 0) -> datetime:
    return add_months(AS_OF, -months) - timedelta(days=days)


def condition(*concepts: str, when: datetime | None = None, status: str = "active", rid: str = "") -> CodedFact:
    when = when or months_ago(3)
    rid = rid or f"cond-{'-'.join(concepts)}"
    return CodedFact(
        concepts=frozenset(concepts),
        codes=(),
        text=" ".join(concepts),
        status=status,
        date=when,
        evidence=Evidence("Condition", rid, when, " ".join(concepts)),
    )


def procedure(*concepts: str, status: str | None = "completed") -> CodedFact:
    when = months_ago(60)
    return CodedFact(
        concepts=frozenset(concepts),
        codes=(),
        text=None,
        status=status,
        date=when,
        evidence=Evidence("Procedure", "proc", when, " ".join(concepts)),
    )


def med(
    ingredient: str,
    status: str | None = "active",
    source: MedicationSource = "request",
    *,
    ended: datetime | None = None,
    when: datetime | None = None,
) -> MedicationUse:
    when = when or months_ago(2)
    return medication_use(
        ingredient,
        GROUPS[ingredient],
        source,
        status,
        started=when,
        ended=ended,
        rid=f"{ingredient}-{status}",
        kind="MedicationRequest",
    )


def hormone(concept: str, value: float | None, when: datetime, unit: str = "") -> LabResult:
    shown = f"{value} {unit}".strip()
    return LabResult(
        concept=concept,
        effective=when,
        value=value,
        unit=unit or None,
        interpretable=value is not None,
        original=shown,
        evidence=Evidence("Observation", f"{concept}-{when.date()}", when, f"{concept}: {shown}"),
    )


def fsh(value: float, when: datetime | None = None) -> LabResult:
    return hormone("fsh", value, when or months_ago(0, days=10), "[IU]/L")


def e2(value: float, when: datetime | None = None) -> LabResult:
    return hormone("estradiol", value, when or months_ago(0, days=10), "pg/mL")


def lmp(period: datetime | None) -> LabResult:
    when = months_ago(0, days=10)
    return LabResult(  # value_date: the date a last-menstrual-period Observation gives
        concept="last-menstrual-period",
        effective=when,
        value=None,
        unit=None,
        interpretable=True,
        original=period.date().isoformat() if period else "",
        evidence=Evidence("Observation", "lmp", when, "Last menstrual period"),
        value_date=period,
    )


def snapshot(
    *,
    sex: Sex = "female",
    age: int | None = 52,
    conditions: Iterable[CodedFact] = (),
    procedures: Iterable[CodedFact] = (),
    medications: Iterable[MedicationUse] = (),
    labs: Iterable[LabResult] = (),
) -> PatientSnapshot:
    ordered = sorted(labs, key=lambda lab: -(lab.effective or AS_OF).timestamp())
    return PatientSnapshot(
        as_of=AS_OF,
        patient_id="p",
        sex=sex,
        birth_date=None,
        age_years=age,
        conditions=tuple(conditions),
        procedures=tuple(procedures),
        medications=tuple(medications),
        labs=tuple(ordered),
    )


POST_LABS = (fsh(45), e2(12))
AMENORRHOEA_14_MONTHS = condition("amenorrhoea", when=months_ago(14))


# ---------------------------------------------------------------------------------------------- dates


@pytest.mark.parametrize(
    ("moment", "months", "expected"),
    [
        (datetime(2026, 1, 31, tzinfo=UTC), 1, datetime(2026, 2, 28, tzinfo=UTC)),
        (datetime(2024, 3, 31, tzinfo=UTC), -1, datetime(2024, 2, 29, tzinfo=UTC)),
        (datetime(2026, 11, 20, tzinfo=UTC), -12, datetime(2025, 11, 20, tzinfo=UTC)),
        (datetime(2026, 11, 20, tzinfo=UTC), -23, datetime(2024, 12, 20, tzinfo=UTC)),
    ],
)
def test_add_months(moment: datetime, months: int, expected: datetime) -> None:
    assert add_months(moment, months) == expected


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (datetime(2025, 11, 20, tzinfo=UTC), AS_OF, 12),
        (datetime(2025, 11, 21, tzinfo=UTC), AS_OF, 11),
        (datetime(2026, 3, 15, tzinfo=UTC), AS_OF, 8),
        (datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 3, 15, tzinfo=UTC), -8),
        (AS_OF, AS_OF, 0),
    ],
)
def test_whole_months(start: datetime, end: datetime, expected: int) -> None:
    assert whole_months(start, end) == expected


# ---------------------------------------------------------------------------------------------- fixed states


@pytest.mark.parametrize(
    ("kwargs", "state", "basis"),
    [
        ({"sex": "male", "age": 66}, "male", "male patient"),
        ({"sex": "unknown", "age": 50}, "unknown", "sex not recorded as female or male"),
        ({"sex": "other", "age": 70}, "unknown", "sex not recorded as female or male"),
        ({"age": 60}, "postmenopausal", "age 60"),
        ({"age": 72, "medications": [med("goserelin")]}, "postmenopausal", "age 72"),
        ({"age": 42, "procedures": [procedure("bilateral-oophorectomy")]}, "postmenopausal", "bilateral oophorectomy"),
        (
            {"age": 42, "procedures": [procedure("bilateral-oophorectomy", status=None)]},
            "postmenopausal",
            "bilateral oophorectomy",
        ),
        (
            {"age": 48, "conditions": [condition("bilateral-oophorectomy-status", when=months_ago(80))]},
            "postmenopausal",
            "bilateral oophorectomy",
        ),
        ({"age": 48, "conditions": [condition("surgical-menopause")]}, "postmenopausal", "bilateral oophorectomy"),
        ({"age": 42, "medications": [med("goserelin")]}, "ovarian-suppressed", "LHRH agonist (goserelin)"),
        (
            {"age": 42, "medications": [med("leuprolide", "draft", "draft")]},
            "ovarian-suppressed",
            "LHRH agonist (leuprolide)",
        ),
        (
            {"age": 42, "medications": [med("goserelin", "on-hold", "statement")]},
            "ovarian-suppressed",
            "LHRH agonist (goserelin)",
        ),
    ],
)
def test_fixed_states(kwargs: dict[str, Any], state: str, basis: str) -> None:
    status = menopausal_status(snapshot(**kwargs))
    assert (status.state, status.basis) == (state, basis)


def test_age_59_is_not_enough() -> None:
    assert menopausal_status(snapshot(age=59)).state == "unknown"


def test_a_procedure_not_done_is_no_oophorectomy() -> None:
    status = menopausal_status(snapshot(age=45, procedures=[procedure("bilateral-oophorectomy", status="not-done")]))
    assert status.state == "unknown"


def test_unilateral_oophorectomy_does_not_establish_menopause() -> None:
    assert (
        menopausal_status(snapshot(age=45, conditions=[condition("unilateral-oophorectomy-status")])).state == "unknown"
    )


def test_oophorectomy_evidence_is_kept() -> None:
    surgery = condition("bilateral-oophorectomy-status", rid="z90")
    status = menopausal_status(snapshot(age=48, conditions=[surgery]))
    assert status.evidence == (surgery.evidence,)


def test_a_stopped_lhrh_agonist_is_not_suppression() -> None:
    status = menopausal_status(snapshot(age=42, medications=[med("goserelin", "stopped", ended=months_ago(30))]))
    assert status.state == "unknown"


# ---------------------------------------------------------------------------------------------- recorded states


@pytest.mark.parametrize(
    ("conditions", "state"),
    [
        ([condition("premenopausal")], "premenopausal"),
        ([condition("perimenopausal")], "perimenopausal"),
        ([condition("postmenopausal")], "postmenopausal"),
        ([condition("premature-menopause")], "postmenopausal"),
        ([condition("premenopausal", status="resolved")], "unknown"),
        ([condition("premenopausal", status="inactive"), condition("postmenopausal")], "postmenopausal"),
        # the latest recorded state leads
        (
            [condition("premenopausal", when=months_ago(30)), condition("perimenopausal", when=months_ago(2))],
            "perimenopausal",
        ),
        (
            [condition("premenopausal", when=months_ago(2)), condition("postmenopausal", when=months_ago(30))],
            "premenopausal",
        ),
    ],
)
def test_recorded_state(conditions: list[CodedFact], state: str) -> None:
    assert menopausal_status(snapshot(age=50, conditions=conditions)).state == state


def test_recorded_state_basis_and_evidence() -> None:
    coded = condition("premenopausal", when=datetime(2026, 9, 2, tzinfo=UTC), rid="pre")
    status = menopausal_status(snapshot(age=42, conditions=[coded]))
    assert status.basis == "recorded on 2026-09-02 as premenopausal"
    assert status.evidence == (coded.evidence,)


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"conditions": [condition("antineoplastic-chemotherapy-history")]}, "chemotherapy on record"),
        ({"conditions": [condition("antineoplastic-adverse-effect")]}, "chemotherapy on record"),
        ({"procedures": [procedure("chemotherapy-procedure")]}, "chemotherapy on record"),
        ({"medications": [med("tamoxifen")]}, "on tamoxifen: FSH and estradiol must both be"),
        ({"medications": [med("toremifene", "completed", ended=months_ago(3))]}, "on toremifene"),
        (
            {"medications": [med("goserelin", "completed", ended=months_ago(2))]},
            "ovarian suppression (goserelin) until",
        ),
    ],
)
def test_recorded_postmenopausal_under_60_with_a_caveat_is_not_enough(extra: dict[str, list[Any]], reason: str) -> None:
    conditions = [condition("postmenopausal"), *extra.get("conditions", [])]
    status = menopausal_status(
        snapshot(
            age=50,
            conditions=conditions,
            procedures=extra.get("procedures", ()),
            medications=extra.get("medications", ()),
        )
    )
    assert status.state == "unknown"
    assert any("does not establish menopause under 60" in r for r in status.reasons)
    assert any(reason in r for r in status.reasons)


def test_tamoxifen_stopped_long_ago_is_no_caveat() -> None:
    status = menopausal_status(
        snapshot(
            age=55,
            conditions=[condition("postmenopausal")],
            medications=[med("tamoxifen", "completed", ended=months_ago(30))],
        )
    )
    assert status.state == "postmenopausal"


def test_recorded_postmenopausal_contradicted_by_newer_labs() -> None:
    coded = condition("postmenopausal", when=months_ago(20))
    status = menopausal_status(snapshot(age=50, conditions=[coded], labs=[fsh(6), e2(140)]))
    assert status.state == "unknown"
    assert any("older than FSH/estradiol results outside the postmenopausal range" in r for r in status.reasons)


def test_recorded_postmenopausal_newer_than_the_labs_stands() -> None:
    coded = condition("postmenopausal", when=months_ago(0, days=2))
    status = menopausal_status(snapshot(age=50, conditions=[coded], labs=[fsh(6), e2(140)]))
    assert status.state == "postmenopausal"


# ---------------------------------------------------------------------------------------------- criterion 3


@pytest.mark.parametrize(
    ("labs", "conditions", "state"),
    [
        ([lmp(months_ago(13)), *POST_LABS], [], "postmenopausal"),
        ([lmp(months_ago(12)), *POST_LABS], [], "postmenopausal"),
        ([lmp(months_ago(11)), *POST_LABS], [], "unknown"),
        ([*POST_LABS], [AMENORRHOEA_14_MONTHS], "postmenopausal"),
        ([*POST_LABS], [condition("amenorrhoea", when=months_ago(14), status="resolved")], "unknown"),
        # the LMP, when dated, leads over an older amenorrhoea onset
        ([lmp(months_ago(4)), *POST_LABS], [AMENORRHOEA_14_MONTHS], "unknown"),
        ([lmp(months_ago(13)), fsh(29.9), e2(12)], [], "unknown"),
        ([lmp(months_ago(13)), fsh(30), e2(12)], [], "postmenopausal"),
        ([lmp(months_ago(13)), fsh(45), e2(30)], [], "unknown"),
        ([lmp(months_ago(13)), fsh(45)], [], "unknown"),
        ([lmp(months_ago(13)), e2(12)], [], "unknown"),
        # results older than the look-back are not used
        ([lmp(months_ago(20)), fsh(45, months_ago(14)), e2(12, months_ago(14))], [], "unknown"),
        # the latest result leads
        ([lmp(months_ago(20)), fsh(45, months_ago(6)), fsh(20, months_ago(1)), e2(12)], [], "unknown"),
        # a newer recorded premenopausal state leads over the labs; an older one does not
        ([lmp(months_ago(13)), *POST_LABS], [condition("premenopausal", when=months_ago(0, days=1))], "premenopausal"),
        ([lmp(months_ago(13)), *POST_LABS], [condition("premenopausal", when=months_ago(30))], "postmenopausal"),
    ],
)
def test_amenorrhoea_and_labs(labs: list[LabResult], conditions: list[CodedFact], state: str) -> None:
    assert menopausal_status(snapshot(age=54, labs=labs, conditions=conditions)).state == state


def test_labs_basis_and_evidence() -> None:
    period = lmp(months_ago(19))
    status = menopausal_status(snapshot(age=55, labs=[period, fsh(68), e2(8)]))
    assert status.state == "postmenopausal"
    assert status.basis == "amenorrhoea for 19 months, FSH 68 [IU]/L and estradiol 8 pg/mL in the postmenopausal range"
    assert period.evidence in status.evidence
    assert {e.resource_id for e in status.evidence} >= {"lmp", f"fsh-{(AS_OF - timedelta(days=10)).date()}"}


@pytest.mark.parametrize(
    ("labs", "expected"),
    [
        (
            [lmp(datetime(2026, 3, 15, tzinfo=UTC)), fsh(12), e2(85)],
            [
                "last menstrual period 2026-03-15, 8 months ago (12 months of amenorrhoea are needed)",
                f"FSH 12 [IU]/L on {(AS_OF - timedelta(days=10)).date()} is not in the postmenopausal range "
                "(FSH ≥ 30 IU/L = mIU/mL)",
                f"estradiol 85 pg/mL on {(AS_OF - timedelta(days=10)).date()} is not in the postmenopausal range "
                "(estradiol < 30 pg/mL)",
            ],
        ),
        (
            [fsh(50)],
            [
                "no date of the last menstrual period or of the start of amenorrhoea on record",
                "no estradiol result in the last 12 months",
            ],
        ),
        ([lmp(None), *POST_LABS], ["the last menstrual period is recorded without a date that could be read"]),
    ],
)
def test_reasons_say_what_is_missing(labs: list[LabResult], expected: list[str]) -> None:
    status = menopausal_status(snapshot(age=55, labs=labs))
    assert status.state == "unknown"
    assert list(status.reasons) == expected


def test_nothing_on_record() -> None:
    status = menopausal_status(snapshot(age=45))
    assert status.state == "unknown"
    assert status.reasons == (
        "nothing on record establishes menopause: no bilateral oophorectomy, no recorded menopausal status, "
        "no last menstrual period, no FSH or estradiol result",
    )
    assert status.evidence == ()


def test_unknown_age_is_a_reason() -> None:
    status = menopausal_status(snapshot(age=None))
    assert status.state == "unknown"
    assert status.reasons[0] == "age not recorded (every woman of 60 or more is postmenopausal)"


def test_an_undated_lmp_without_last_menstrual_period_support_uses_the_amenorrhoea_record() -> None:
    """A plain LabResult (no ``value_date``) gives no date; the amenorrhoea Condition still does."""
    undated = hormone("last-menstrual-period", None, months_ago(0, days=3))
    assert last_menstrual_period(undated) is None
    status = menopausal_status(snapshot(age=55, labs=[undated, *POST_LABS], conditions=[AMENORRHOEA_14_MONTHS]))
    assert status.state == "postmenopausal"


# ---------------------------------------------------------------------------------------------- caveats


def test_chemotherapy_needs_serial_results() -> None:
    chemo = condition("antineoplastic-chemotherapy-history", when=months_ago(20))
    single = menopausal_status(snapshot(age=45, conditions=[chemo, AMENORRHOEA_14_MONTHS], labs=list(POST_LABS)))
    assert single.state == "unknown"
    assert any("serial FSH and estradiol" in r and "on 1 day(s)" in r for r in single.reasons)
    assert chemo.evidence in single.evidence

    serial_labs = [fsh(52, months_ago(6)), e2(9, months_ago(6)), fsh(61), e2(9)]
    serial = menopausal_status(snapshot(age=45, conditions=[chemo, AMENORRHOEA_14_MONTHS], labs=serial_labs))
    assert serial.state == "postmenopausal"
    assert serial.basis.endswith("on 2 different days")


def test_chemotherapy_serial_results_still_need_twelve_months_of_amenorrhoea() -> None:
    chemo = condition("antineoplastic-chemotherapy-history")
    labs = [lmp(months_ago(8)), fsh(52, months_ago(6)), e2(9, months_ago(6)), fsh(61), e2(9)]
    assert menopausal_status(snapshot(age=45, conditions=[chemo], labs=labs)).state == "unknown"


def test_recent_ovarian_suppression_needs_serial_results() -> None:
    past = med("goserelin", "completed", ended=months_ago(3))
    labs = [lmp(months_ago(14)), *POST_LABS]
    assert menopausal_status(snapshot(age=50, medications=[past], labs=labs)).state == "unknown"
    serial = [lmp(months_ago(14)), fsh(40, months_ago(2)), fsh(45), e2(12)]
    assert menopausal_status(snapshot(age=50, medications=[past], labs=serial)).state == "postmenopausal"


@pytest.mark.parametrize(
    ("labs", "state"),
    [
        (list(POST_LABS), "postmenopausal"),  # criterion 4: no amenorrhoea needed on tamoxifen
        ([fsh(45), e2(60)], "unknown"),
        ([fsh(12), e2(12)], "unknown"),
        ([], "unknown"),
    ],
)
def test_on_tamoxifen_fsh_and_estradiol_decide(labs: list[LabResult], state: str) -> None:
    status = menopausal_status(snapshot(age=56, medications=[med("tamoxifen")], labs=labs))
    assert status.state == state
    if state == "postmenopausal":
        assert "on tamoxifen" in status.basis
    else:
        assert any(r.startswith("on tamoxifen") for r in status.reasons)


# ---------------------------------------------------------------------------------------------- criteria


def test_criteria_from_thresholds() -> None:
    assert MenopauseCriteria.from_thresholds(THRESHOLDS) == DEFAULT_CRITERIA
    tuned = MenopauseCriteria.from_thresholds(
        {
            "fsh_postmenopausal_min_iu_l": 40,
            "estradiol_postmenopausal_max_pg_ml": 20,
            "serial_results_after_chemotherapy": 3,
        }
    )
    assert (tuned.fsh_min_iu_l, tuned.estradiol_max_pg_ml, tuned.serial_results, tuned.amenorrhoea_months) == (
        40.0,
        20.0,
        3,
        12,
    )


def test_site_cutoffs_change_the_state() -> None:
    record = snapshot(age=54, labs=[lmp(months_ago(13)), fsh(35), e2(25)])
    assert menopausal_status(record).state == "postmenopausal"
    assert menopausal_status(record, MenopauseCriteria(fsh_min_iu_l=40)).state == "unknown"
    assert menopausal_status(record, MenopauseCriteria(estradiol_max_pg_ml=20)).state == "unknown"
    shorter = snapshot(age=54, labs=[lmp(months_ago(7)), fsh(45), e2(12)])
    assert menopausal_status(shorter, MenopauseCriteria(amenorrhoea_months=6)).state == "postmenopausal"


# ---------------------------------------------------------------------------------------------- FHIR codes

RX, SCT, ICD, NDC, LOINC = SYSTEMS["rxnorm"], SYSTEMS["snomed"], SYSTEMS["icd10cm"], SYSTEMS["ndc"], SYSTEMS["loinc"]


def _from_fhir(*resources: dict[str, Any], age_birth: str = "1981-07-30") -> PatientSnapshot:
    patient = {"resourceType": "Patient", "id": "p", "gender": "female", "birthDate": age_birth}
    keys = ("patient", "conditions", "procedures", "medicationRequests", "medicationStatements", "hormones")
    data = PatientData(
        resources={"patient": (patient,), "conditions": tuple(resources)},
        outcomes={k: KeyOutcome(k, "prefetched") for k in keys},
    )
    return build_snapshot(data, patient_id="p", draft_orders=[], evaluated_orders=[], as_of=AS_OF, vs=load_valuesets())


def _condition(system: str, code: str, onset: str = "2025-09-01") -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": f"c-{code}",
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": "Patient/p"},
        "onsetDateTime": onset,
    }


def _observation(code: str, value: dict[str, Any], when: str = "2026-11-05T09:00:00Z") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": f"o-{code}-{when[:10]}",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": "Patient/p"},
        "effectiveDateTime": when,
        **value,
    }


FSH_45 = _observation(
    "15067-2",
    {"valueQuantity": {"value": 45, "unit": "mIU/mL", "system": "http://unitsofmeasure.org", "code": "m[IU]/mL"}},
)
E2_73_PMOL = _observation(
    "2243-4",
    {"valueQuantity": {"value": 73, "unit": "pmol/L", "system": "http://unitsofmeasure.org", "code": "pmol/L"}},
)


@pytest.mark.parametrize(
    ("resources", "state"),
    [
        ((_condition(ICD, "N91.1"), FSH_45, E2_73_PMOL), "postmenopausal"),  # 73 pmol/L = 19.9 pg/mL
        ((_condition(ICD, "N91.2"), FSH_45, E2_73_PMOL), "postmenopausal"),
        ((_condition(SCT, "14302001"), FSH_45, E2_73_PMOL), "postmenopausal"),
        ((_condition(SCT, "14302001", onset="2026-06-01"), FSH_45, E2_73_PMOL), "unknown"),
        ((_condition(ICD, "N91.1"), _condition(ICD, "Z92.21"), FSH_45, E2_73_PMOL), "unknown"),
        ((_condition(ICD, "N91.1"), _condition(ICD, "T45.1X5A"), FSH_45, E2_73_PMOL), "unknown"),
        ((_condition(ICD, "Z90.722"),), "postmenopausal"),
        ((_condition(SCT, "309606002"),), "premenopausal"),
        ((_condition(SCT, "22636003"),), "premenopausal"),
        ((_condition(SCT, "303111005"),), "perimenopausal"),
        ((_condition(ICD, "Z78.0"),), "postmenopausal"),
        ((_condition(ICD, "Z78.0"), _condition(ICD, "Z92.21")), "unknown"),
    ],
)
def test_value_set_codes_reach_the_derivation(resources: tuple[dict[str, Any], ...], state: str) -> None:
    assert menopausal_status(_from_fhir(*resources)).state == state


def test_chemotherapy_procedure_code_reaches_the_derivation() -> None:
    chemo = {
        "resourceType": "Procedure",
        "id": "proc-chemo",
        "status": "completed",
        "code": {"coding": [{"system": SCT, "code": "367336001"}]},
        "subject": {"reference": "Patient/p"},
        "performedDateTime": "2025-05-01",
    }
    record = _from_fhir(_condition(ICD, "N91.1"), chemo, FSH_45, E2_73_PMOL)
    assert [p.concepts for p in record.procedures] == [frozenset({"chemotherapy-procedure"})]
    assert menopausal_status(record).state == "unknown"


@pytest.mark.parametrize(
    ("coding", "expected"),
    [
        ({"system": NDC, "code": "70720-950-36"}, "ovarian-suppressed"),
        ({"system": RX, "code": "50610"}, "ovarian-suppressed"),
        ({"system": RX, "code": "475230"}, "unknown"),  # degarelix: a GnRH antagonist is not ovarian suppression
    ],
)
def test_goserelin_codes_are_ovarian_suppression(coding: dict[str, str], expected: str) -> None:
    order = {
        "resourceType": "MedicationRequest",
        "id": "mr-gnrh",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [coding]},
        "subject": {"reference": "Patient/p"},
        "authoredOn": "2026-11-01",
    }
    assert menopausal_status(_from_fhir(order)).state == expected


def test_degarelix_and_relugolix_are_gnrh_antagonists() -> None:
    vs = load_valuesets()
    assert vs.groups_of({"degarelix"}) == {"gnrh-antagonist"}
    assert vs.groups_of(vs.medication_names_in("Orgovyx (relugolix) 120 mg tablet")) == {"gnrh-antagonist"}


def test_default_thresholds_are_the_brief_values() -> None:
    assert THRESHOLDS == {
        "fsh_postmenopausal_min_iu_l": 30.0,
        "estradiol_postmenopausal_max_pg_ml": 30.0,
        "amenorrhoea_months": 12,
        "hormone_lookback_months": 12,
        "serial_results_after_chemotherapy": 2,
    }
