"""build_snapshot and age_at: FHIR JSON to the PatientSnapshot the rules read."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from cds_service.prefetch.model import KeyOutcome, PatientData
from cds_service.snapshot.build import age_at, build_snapshot
from cds_service.snapshot.model import Evidence, MedicationSource, MedicationUse, PatientSnapshot
from cds_service.terminology import ValueSets
from tests.unit.fhir import (
    HGNC,
    ICD10CM,
    LETROZOLE_25_TAB_SCD,
    LETROZOLE_IN,
    LOINC,
    PALBOCICLIB_125_TAB_SCD,
    RXNORM,
    SNOMED,
    TAMOXIFEN_10_TAB_SCD,
    concept,
    condition,
    med_request,
    med_statement,
    observation,
)

AS_OF = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
PATIENT_ID = "pat-1"


def _patient(rid: str = PATIENT_ID, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": rid, "gender": "female", "birthDate": "1960-05-17", **extra}


def _data(**keys: Iterable[dict[str, Any]]) -> PatientData:
    return PatientData(
        resources={key: tuple(resources) for key, resources in keys.items()},
        outcomes={key: KeyOutcome(key, "prefetched") for key in keys},
    )


def _build(
    vs: ValueSets,
    *,
    drafts: Iterable[dict[str, Any]] = (),
    evaluated: Iterable[dict[str, Any]] = (),
    extra_medications: dict[str, dict[str, Any]] | None = None,
    **keys: Iterable[dict[str, Any]],
) -> PatientSnapshot:
    keys.setdefault("patient", [_patient()])
    return build_snapshot(
        _data(**keys),
        patient_id=PATIENT_ID,
        draft_orders=drafts,
        evaluated_orders=evaluated,
        as_of=AS_OF,
        vs=vs,
        extra_medications=extra_medications,
    )


# ---------------------------------------------------------------------------------------------- age_at
@pytest.mark.parametrize(
    ("birth", "moment", "expected"),
    [
        (date(1960, 5, 17), datetime(2026, 5, 16, tzinfo=UTC), 65),  # day before the birthday
        (date(1960, 5, 17), datetime(2026, 5, 17, tzinfo=UTC), 66),  # on the birthday
        (date(1960, 5, 17), datetime(2026, 5, 18, tzinfo=UTC), 66),
        (date(1960, 12, 31), datetime(2026, 1, 1, tzinfo=UTC), 65),
        (date(1960, 1, 1), datetime(2025, 12, 31, 23, 59, tzinfo=UTC), 65),
        (date(2000, 2, 29), datetime(2021, 2, 28, tzinfo=UTC), 20),  # leap-day birthday, common year
        (date(2000, 2, 29), datetime(2021, 3, 1, tzinfo=UTC), 21),
        (date(2000, 2, 29), datetime(2024, 2, 28, tzinfo=UTC), 23),
        (date(2000, 2, 29), datetime(2024, 2, 29, tzinfo=UTC), 24),
        (date(2026, 11, 20), datetime(2026, 11, 20, tzinfo=UTC), 0),
        (None, datetime(2026, 11, 20, tzinfo=UTC), None),
    ],
)
def test_age_at(birth: date | None, moment: datetime, expected: int | None) -> None:
    assert age_at(birth, moment) == expected


def test_age_at_uses_the_date_of_the_given_moment() -> None:
    # 23:30 in UTC-5 on the day before the birthday is already the birthday in UTC; the moment's own date counts
    moment = datetime(2026, 5, 16, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    assert age_at(date(1960, 5, 17), moment) == 65
    assert age_at(date(1960, 5, 17), moment.astimezone(UTC)) == 66


# ---------------------------------------------------------------------------------------------- patient
def test_patient_demographics(vs: ValueSets) -> None:
    snapshot = _build(vs)
    assert snapshot.patient_id == PATIENT_ID
    assert snapshot.as_of == AS_OF
    assert snapshot.sex == "female"
    assert snapshot.birth_date == date(1960, 5, 17)
    assert snapshot.age_years == 66
    assert snapshot.available == {"patient"}


@pytest.mark.parametrize(
    ("gender", "expected"),
    [
        ("female", "female"),
        ("male", "male"),
        ("other", "other"),
        ("unknown", "unknown"),
        (None, "unknown"),
        (3, "unknown"),
    ],
)
def test_sex(vs: ValueSets, gender: Any, expected: str) -> None:
    assert _build(vs, patient=[_patient(gender=gender)]).sex == expected


@pytest.mark.parametrize(
    ("birth", "expected_date", "expected_age"),
    [("1960", date(1960, 1, 1), 66), ("1960-12", date(1960, 12, 1), 65), ("garbage", None, None), (None, None, None)],
)
def test_partial_or_bad_birth_dates(
    vs: ValueSets, birth: str | None, expected_date: date | None, expected_age: int | None
) -> None:
    snapshot = _build(vs, patient=[_patient(birthDate=birth)])
    assert snapshot.birth_date == expected_date
    assert snapshot.age_years == expected_age


def test_the_named_patient_is_chosen(vs: ValueSets) -> None:
    other = _patient("someone-else", gender="male", birthDate="1990-01-01")
    snapshot = _build(vs, patient=[other, _patient()])
    assert snapshot.sex == "female"
    assert snapshot.birth_date == date(1960, 5, 17)


def test_no_patient_resource(vs: ValueSets) -> None:
    snapshot = _build(vs, patient=[])
    assert snapshot.sex == "unknown"
    assert snapshot.birth_date is None
    assert snapshot.age_years is None


def test_available_keys_come_from_outcomes(vs: ValueSets) -> None:
    data = PatientData(
        resources={"patient": (_patient(),), "labs": ()},
        outcomes={
            "patient": KeyOutcome("patient", "prefetched"),
            "labs": KeyOutcome("labs", "null"),
            "conditions": KeyOutcome("conditions", "failed", "HTTP 503"),
        },
    )
    snapshot = build_snapshot(data, patient_id=PATIENT_ID, draft_orders=[], evaluated_orders=[], as_of=AS_OF, vs=vs)
    assert snapshot.available == {"patient", "labs"}


# ---------------------------------------------------------------------------------------------- conditions
def test_conditions_and_procedures_are_mapped(vs: ValueSets) -> None:
    snapshot = _build(
        vs,
        conditions=[
            condition(
                "c1",
                ICD10CM,
                "C50.912",
                onset="2024-03-01",
                clinicalStatus=concept("http://terminology.hl7.org/CodeSystem/condition-clinical", "active"),
            ),
            condition("c2", ICD10CM, "C78.7", recordedDate="2026-01-02T10:00:00Z"),
            condition("c3", SNOMED, "00000000"),
        ],
        procedures=[
            {
                "resourceType": "Procedure",
                "id": "p1",
                "status": "completed",
                "code": concept(SNOMED, "29827000"),
                "performedPeriod": {"start": "2019-06-01"},
            }
        ],
    )
    by_id = {c.evidence.resource_id: c for c in snapshot.conditions}
    assert by_id["c1"].concepts == {"breast-cancer"}
    assert by_id["c1"].status == "active"
    assert by_id["c1"].date == datetime(2024, 3, 1, tzinfo=UTC)
    assert by_id["c2"].concepts == {"secondary-malignancy"}
    assert by_id["c2"].date == datetime(2026, 1, 2, 10, tzinfo=UTC)
    assert by_id["c3"].concepts == frozenset()
    assert [c.evidence.resource_id for c in snapshot.conditions_with("breast-cancer")] == ["c1"]
    (procedure,) = snapshot.procedures
    assert procedure.concepts == {"bilateral-oophorectomy"}
    assert procedure.status == "completed"
    assert procedure.date == datetime(2019, 6, 1, tzinfo=UTC)
    assert procedure.evidence.reference == "Procedure/p1"


@pytest.mark.parametrize(
    "extra",
    [
        {"verificationStatus": concept("http://terminology.hl7.org/CodeSystem/condition-ver-status", "refuted")},
        {
            "verificationStatus": concept(
                "http://terminology.hl7.org/CodeSystem/condition-ver-status", "entered-in-error"
            )
        },
        {"status": "entered-in-error"},
    ],
)
def test_refuted_or_entered_in_error_conditions_are_dropped(vs: ValueSets, extra: dict[str, Any]) -> None:
    kept = condition("kept", ICD10CM, "C50.912")
    dropped = condition("dropped", ICD10CM, "Z17.1", **extra)
    snapshot = _build(vs, conditions=[kept, dropped])
    assert [c.evidence.resource_id for c in snapshot.conditions] == ["kept"]


def test_confirmed_condition_is_kept(vs: ValueSets) -> None:
    confirmed = condition("c", ICD10CM, "Z17.1", verificationStatus=concept("http://x/ver-status", "confirmed"))
    assert [c.concepts for c in _build(vs, conditions=[confirmed]).conditions] == [{"er-negative"}]


# ---------------------------------------------------------------------------------------------- medications
@pytest.mark.parametrize(
    ("status", "current"),
    [
        ("active", True),
        ("on-hold", True),
        ("completed", False),
        ("stopped", False),
        ("draft", False),  # a draft that is not part of this order set
        ("unknown", False),
    ],
)
def test_medication_request_status(vs: ValueSets, status: str, current: bool) -> None:
    snapshot = _build(vs, medications=[med_request("m", LETROZOLE_IN, status=status)])
    (use,) = snapshot.medications
    assert use.source == "request"
    assert use.status == status
    assert use.is_current is current


@pytest.mark.parametrize(
    ("status", "current"),
    [
        ("active", True),
        ("intended", True),
        ("on-hold", True),
        ("completed", False),
        ("stopped", False),
        ("not-taken", False),
    ],
)
def test_medication_statement_status(vs: ValueSets, status: str, current: bool) -> None:
    snapshot = _build(vs, statements=[med_statement("s", LETROZOLE_IN, status=status)])
    (use,) = snapshot.medications
    assert use.source == "statement"
    assert use.is_current is current


@pytest.mark.parametrize("status", ["draft", "active", "completed", None])
def test_draft_orders_are_always_current(vs: ValueSets, status: str | None) -> None:
    draft = med_request("d", LETROZOLE_IN, status=status or "draft")
    if status is None:
        del draft["status"]
    snapshot = _build(vs, drafts=[draft])
    (use,) = snapshot.medications
    assert use.source == "draft"
    assert use.is_current is True


@pytest.mark.parametrize("status", ["entered-in-error", "cancelled"])
def test_cancelled_or_entered_in_error_requests_are_dropped(vs: ValueSets, status: str) -> None:
    snapshot = _build(vs, medications=[med_request("m", LETROZOLE_IN, status=status)])
    assert snapshot.medications == ()


def _use(source: MedicationSource, status: str | None) -> MedicationUse:
    return MedicationUse(
        ingredients=frozenset({"letrozole"}),
        groups=frozenset({"aromatase-inhibitor"}),
        source=source,
        status=status,
        product=None,
        matched_by="ingredient",
        text="letrozole",
        evidence=Evidence("MedicationRequest", "x", None, ""),
    )


@pytest.mark.parametrize(
    ("source", "status", "current"),
    [
        ("request", "active", True),
        ("request", "on-hold", True),
        ("request", "completed", False),
        ("request", "stopped", False),
        ("request", "intended", False),
        ("request", None, False),
        ("statement", "active", True),
        ("statement", "intended", True),
        ("statement", "completed", False),
        ("statement", "stopped", False),
        ("statement", None, False),
        ("draft", None, True),
        ("draft", "completed", True),
    ],
)
def test_is_current(source: MedicationSource, status: str | None, current: bool) -> None:
    assert _use(source, status).is_current is current


def test_medication_groups_and_evidence(vs: ValueSets) -> None:
    request = med_request("m", LETROZOLE_25_TAB_SCD, authored="2026-02-03T09:00:00Z", text="Femara 2.5 mg")
    (use,) = _build(vs, medications=[request]).medications
    assert use.ingredients == {"letrozole"}
    assert use.groups == {"aromatase-inhibitor"}
    assert use.product is not None
    assert use.evidence.reference == "MedicationRequest/m"
    assert use.evidence.date == datetime(2026, 2, 3, 9, tzinfo=UTC)
    assert use.evidence.description == "Femara 2.5 mg (request, active)"


def test_statement_date_from_effective_period(vs: ValueSets) -> None:
    statement = med_statement("s", LETROZOLE_IN)
    statement["effectivePeriod"] = {"start": "2025-07"}
    (use,) = _build(vs, statements=[statement]).medications
    assert use.evidence.date == datetime(2025, 7, 1, tzinfo=UTC)


def test_unresolvable_medications_are_left_out(vs: ValueSets) -> None:
    snapshot = _build(vs, medications=[med_request("m", "99999999", text="vitamin D")])
    assert snapshot.medications == ()


def test_evaluated_order_is_excluded_even_when_it_is_also_in_prefetch(vs: ValueSets) -> None:
    draft = med_request("palbo", PALBOCICLIB_125_TAB_SCD, status="draft")
    prefetch_copy = med_request("palbo", PALBOCICLIB_125_TAB_SCD, status="active")
    other_draft = med_request("letro", LETROZOLE_IN, status="draft")
    snapshot = _build(vs, drafts=[draft, other_draft], evaluated=[draft], medications=[prefetch_copy])
    assert [m.evidence.resource_id for m in snapshot.medications] == ["letro"]
    assert snapshot.medications_in("palbociclib") == ()
    assert snapshot.medications_in("aromatase-inhibitor")[0].source == "draft"


def test_evaluated_order_without_id_is_excluded_by_identity(vs: ValueSets) -> None:
    draft = med_request(None, PALBOCICLIB_125_TAB_SCD, status="draft")
    twin = med_request(None, PALBOCICLIB_125_TAB_SCD, status="draft")
    snapshot = _build(vs, drafts=[draft, twin], evaluated=[draft])
    assert len(snapshot.medications) == 1
    assert snapshot.medications[0].source == "draft"


def test_evaluated_key_is_per_resource_type(vs: ValueSets) -> None:
    draft = med_request("same", PALBOCICLIB_125_TAB_SCD, status="draft")
    statement = med_statement("same", LETROZOLE_IN)
    snapshot = _build(vs, drafts=[draft], evaluated=[draft], statements=[statement])
    assert [m.source for m in snapshot.medications] == ["statement"]


def test_draft_wins_over_its_prefetch_copy(vs: ValueSets) -> None:
    draft = med_request("letro", LETROZOLE_IN, status="draft")
    copy = med_request("letro", LETROZOLE_IN, status="completed")
    (use,) = _build(vs, drafts=[draft], medications=[copy]).medications
    assert use.source == "draft"
    assert use.is_current is True


def test_duplicates_across_prefetch_keys_are_counted_once(vs: ValueSets) -> None:
    request = med_request("m", LETROZOLE_IN)
    lab = observation("o", "751-8", value=1.3, unit="K/uL")
    cond = condition("c", ICD10CM, "C50.912")
    snapshot = _build(
        vs,
        medications=[request],
        medicationsAgain=[dict(request)],
        labs=[lab],
        anc=[dict(lab)],
        conditions=[cond],
        receptors=[dict(cond)],
    )
    assert len(snapshot.medications) == 1
    assert len(snapshot.labs) == 1
    assert len(snapshot.conditions) == 1


def test_resources_without_id_are_all_kept(vs: ValueSets) -> None:
    labs = [observation(None, "751-8", value=1.3, unit="K/uL"), observation(None, "751-8", value=1.3, unit="K/uL")]
    assert len(_build(vs, labs=labs).labs) == 2


def test_medication_reference_resolved_from_prefetch_and_extra(vs: ValueSets) -> None:
    medication = {"resourceType": "Medication", "id": "tam", "code": concept(RXNORM, TAMOXIFEN_10_TAB_SCD)}
    from_prefetch = med_request("a", medicationReference={"reference": "Medication/tam"})
    from_extra = med_request("b", medicationReference={"reference": "Medication/let"})
    extra = {"Medication/let": {"resourceType": "Medication", "id": "let", "code": concept(RXNORM, LETROZOLE_IN)}}
    snapshot = _build(vs, medications=[from_prefetch, from_extra, medication], extra_medications=extra)
    assert {m.evidence.resource_id: m.ingredients for m in snapshot.medications} == {
        "a": {"tamoxifen"},
        "b": {"letrozole"},
    }


def test_medication_reference_into_a_draft_bundle_medication(vs: ValueSets) -> None:
    medication = {"resourceType": "Medication", "id": "pal", "code": concept(RXNORM, LETROZOLE_IN)}
    draft = med_request("d", status="draft", medicationReference={"reference": "Medication/pal"})
    (use,) = _build(vs, drafts=[draft, medication]).medications
    assert use.ingredients == {"letrozole"}


# ---------------------------------------------------------------------------------------------- observations
def test_observations_are_mapped_and_sorted_newest_first(vs: ValueSets) -> None:
    labs = [
        observation("old", "751-8", value=2.0, unit="K/uL", when="2025-01-01"),
        observation("undated", "751-8", value=3.0, unit="K/uL", when=None),
        observation("new", "751-8", value=1300, unit="/mm3", when="2026-11-01T08:00:00Z"),
        observation("mid", "718-7", value=95, unit="g/L", when="2026-06"),
        observation("other", "99999-9", value=1, unit="g/L"),
    ]
    snapshot = _build(vs, labs=labs)
    assert [lab.evidence.resource_id for lab in snapshot.labs] == ["new", "mid", "old", "undated"]
    assert [lab.value for lab in snapshot.labs_for("anc")] == [pytest.approx(1.3), 2.0, 3.0]
    assert snapshot.labs_for("hemoglobin")[0].value == pytest.approx(9.5)


@pytest.mark.parametrize("status", ["entered-in-error", "cancelled"])
def test_dropped_observations(vs: ValueSets, status: str) -> None:
    labs = [
        observation("bad", "751-8", value=0.2, unit="K/uL", status=status),
        observation("ok", "751-8", value=2.0, unit="K/uL"),
    ]
    assert [lab.evidence.resource_id for lab in _build(vs, labs=labs).labs] == ["ok"]


@pytest.mark.parametrize("status", ["preliminary", "amended", "corrected", "final"])
def test_kept_observation_statuses(vs: ValueSets, status: str) -> None:
    labs = [observation("o", "751-8", value=2.0, unit="K/uL", status=status)]
    assert len(_build(vs, labs=labs).labs) == 1


def test_observation_result_concepts_and_reference_range(vs: ValueSets) -> None:
    labs = [
        observation("er", "85337-4", valueString="Positive", when="2024-01-01"),
        observation("pr", "85339-0", valueCodeableConcept=concept(SNOMED, "260385009"), when="2024-01-01"),
        observation(
            "her2", "48676-1", interpretation=[concept("urn:oid:2.16.840.1.113883.5.83", "NEG")], when="2024-01-01"
        ),
        observation(
            "anc",
            "751-8",
            value=1300,
            unit="/uL",
            referenceRange=[{"low": {"value": 1500, "unit": "/uL"}, "high": {"value": 8, "unit": "K/uL"}}],
        ),
    ]
    snapshot = _build(vs, receptors=labs)
    assert snapshot.labs_for("er-status")[0].result_concepts == {"positive"}
    assert snapshot.labs_for("pr-status")[0].result_concepts == {"negative"}
    assert snapshot.labs_for("her2-interpretation")[0].result_concepts == {"negative"}
    anc = snapshot.labs_for("anc")[0]
    assert anc.reference_low == pytest.approx(1.5)
    assert anc.reference_high == pytest.approx(8.0)


def test_esr1_variant_components_are_mapped(vs: ValueSets) -> None:
    variant = {
        "resourceType": "Observation",
        "id": "esr1",
        "status": "final",
        "code": concept(LOINC, "69548-6"),
        "effectiveDateTime": "2026-08-01",
        "valueCodeableConcept": concept(SNOMED, "260373001"),
        "component": [{"code": concept(LOINC, "48018-6"), "valueCodeableConcept": concept(HGNC, "HGNC:3467")}],
    }
    snapshot = _build(vs, ctdna=[variant])
    assert snapshot.labs_for("esr1-variant")[0].result_concepts == {"detected"}
    gene = snapshot.labs_for("gene-studied")[0]
    assert gene.result_concepts == {"gene-esr1"}
    assert gene.evidence.reference == "Observation/esr1"
    assert gene.effective == datetime(2026, 8, 1, tzinfo=UTC)


def test_resources_of_other_types_are_ignored(vs: ValueSets) -> None:
    snapshot = _build(
        vs,
        other=[
            {"resourceType": "Encounter", "id": "e"},
            {"resourceType": "AllergyIntolerance", "id": "a", "code": concept(RXNORM, LETROZOLE_IN)},
            {"no": "type"},
        ],
    )
    assert snapshot.conditions == ()
    assert snapshot.procedures == ()
    assert snapshot.medications == ()
    assert snapshot.labs == ()
