"""Embryo-fetal toxicity and lactation: pregnancy, a pregnancy test before the first cycle, breastfeeding.

Source: IBRANCE US prescribing information §5.3 (embryo-fetal toxicity), §8.1 (pregnancy), §8.2
(lactation: no breastfeeding during treatment and for 3 weeks after the last dose), §8.3 (verify pregnancy
status of females of reproductive potential before starting; effective contraception during treatment and
for at least 3 weeks after the last dose); clinical brief §3, §6.3-6.4, behaviours 45-47.

Pregnancy is established by an active pregnancy Condition, a pregnancy-status Observation (LOINC 82810-3)
answered "pregnant", or a positive hCG test in the last 30 days (urine or serum qualitative, or a serum
quantitative value above the lab's upper reference limit, else above 5 IU/L). A later negative hCG test or
a later "not pregnant" record supersedes it. A pregnancy record older than a pregnancy can last (300 days)
is not current.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from cds_service.rules.base import Finding, Rule, Threshold
from cds_service.rules.menopause import menopausal_status
from cds_service.rules.safety_common import days_before, is_active, is_done, listed, number, shown, within_days
from cds_service.snapshot.model import Evidence, LabResult, PalbociclibOrder, PatientSnapshot

HCG_TESTS = ("hcg-urine-qualitative", "hcg-serum-qualitative", "hcg-serum-quantitative")
QUANTITATIVE_HCG = "hcg-serum-quantitative"
_POSITIVE = frozenset({"positive", "detected"})
_NEGATIVE = frozenset({"negative", "not-detected"})

PREGNANCY_DEFAULTS: dict[str, Threshold] = {
    "positive_test_within_days": 30,
    "hcg_positive_above_iu_per_l": 5.0,
    "pregnancy_record_max_days": 300,
}
TEST_DEFAULTS: dict[str, Threshold] = {
    "reproductive_age_below": 50,
    "negative_test_within_days": 7,
    "hcg_positive_above_iu_per_l": 5.0,
}
BREASTFEEDING_DEFAULTS: dict[str, Threshold] = {"status_max_age_days": 365}

STERILISING_PROCEDURES = frozenset({"hysterectomy", "tubal-sterilisation", "bilateral-oophorectomy"})
STERILISING_CONDITIONS = frozenset({"hysterectomy-status", "tubal-ligation-status", "bilateral-oophorectomy-status"})


def hcg_result(lab: LabResult, positive_above_iu_per_l: float) -> bool | None:
    """True for a positive hCG test, False for a negative one, None when it says neither.

    A quantitative value is compared with the lab's upper reference limit when the report has one
    (the non-pregnant range), else with the site's default."""
    if lab.concept == QUANTITATIVE_HCG and lab.value is not None:
        limit = lab.reference_high if lab.reference_high is not None else positive_above_iu_per_l
        return lab.value > limit
    positive = bool(lab.result_concepts & _POSITIVE)
    negative = bool(lab.result_concepts & _NEGATIVE)
    if positive == negative:
        return None
    return positive


def hcg_tests(snapshot: PatientSnapshot) -> list[LabResult]:
    """hCG tests on record, newest first."""
    return [lab for lab in snapshot.labs if lab.concept in HCG_TESTS]


@dataclass(frozen=True, slots=True)
class _Record:
    when: datetime | None
    evidence: Evidence


def _positive_records(snapshot: PatientSnapshot, settings: Mapping[str, Threshold]) -> list[_Record]:
    window = number(settings, PREGNANCY_DEFAULTS, "positive_test_within_days")
    limit = number(settings, PREGNANCY_DEFAULTS, "hcg_positive_above_iu_per_l")
    longest = number(settings, PREGNANCY_DEFAULTS, "pregnancy_record_max_days")
    found = [
        _Record(lab.effective, lab.evidence)
        for lab in hcg_tests(snapshot)
        if hcg_result(lab, limit) is True and within_days(snapshot, lab.effective, window)
    ]
    for condition in snapshot.conditions_with("pregnancy"):
        age = days_before(snapshot, condition.date)
        if is_active(condition) and (age is None or age <= longest):
            found.append(_Record(condition.date, condition.evidence))
    for lab in snapshot.labs_for("pregnancy-status"):
        if "status-pregnant" in lab.result_concepts and within_days(snapshot, lab.effective, longest):
            found.append(_Record(lab.effective, lab.evidence))
    return found


def _negative_dates(snapshot: PatientSnapshot, limit: float) -> list[datetime]:
    dates = [lab.effective for lab in hcg_tests(snapshot) if hcg_result(lab, limit) is False]
    dates += [
        lab.effective for lab in snapshot.labs_for("pregnancy-status") if "status-not-pregnant" in lab.result_concepts
    ]
    dates += [c.date for c in snapshot.conditions_with("not-pregnant") if is_active(c)]
    return [d for d in dates if d is not None]


def pregnancy_evidence(snapshot: PatientSnapshot, thresholds: Mapping[str, Threshold]) -> tuple[Evidence, ...]:
    """The records that show a current pregnancy and are not superseded by a later negative record."""
    if snapshot.sex == "male":  # hCG in a man is a tumour marker, not a pregnancy test
        return ()
    settings = {**PREGNANCY_DEFAULTS, **thresholds}
    negatives = _negative_dates(snapshot, number(settings, PREGNANCY_DEFAULTS, "hcg_positive_above_iu_per_l"))
    latest_negative = max(negatives, default=None)
    standing = [
        r.evidence
        for r in _positive_records(snapshot, settings)
        if r.when is None or latest_negative is None or r.when >= latest_negative
    ]
    return tuple(dict.fromkeys(standing))


def evaluate_pregnancy(
    snapshot: PatientSnapshot, order: PalbociclibOrder, thresholds: Mapping[str, Threshold]
) -> list[Finding]:
    evidence = pregnancy_evidence(snapshot, thresholds)
    if not evidence:
        return []
    return [Finding("pregnancy", {"found": listed(evidence)}, evidence)]


def _sterilisation(snapshot: PatientSnapshot) -> list[Evidence]:
    found = [p.evidence for p in snapshot.procedures if STERILISING_PROCEDURES & p.concepts and is_done(p)]
    found += [c.evidence for c in snapshot.conditions if STERILISING_CONDITIONS & c.concepts]
    return found


def _has_had_palbociclib(snapshot: PatientSnapshot) -> bool:
    """Any palbociclib order or medication-list entry besides this order set: not a first start."""
    return any(m.source != "draft" for m in snapshot.medications_in("palbociclib"))


def evaluate_pregnancy_test(
    snapshot: PatientSnapshot, order: PalbociclibOrder, thresholds: Mapping[str, Threshold]
) -> list[Finding]:
    """A woman of reproductive potential starting palbociclib without a recent negative pregnancy test."""
    settings = {**TEST_DEFAULTS, **thresholds}
    age = snapshot.age_years
    if snapshot.sex != "female" or age is None or age >= number(settings, TEST_DEFAULTS, "reproductive_age_below"):
        return []
    status = menopausal_status(snapshot)
    if status.state in ("postmenopausal", "male") or _sterilisation(snapshot) or _has_had_palbociclib(snapshot):
        return []
    if pregnancy_evidence(snapshot, {"hcg_positive_above_iu_per_l": settings["hcg_positive_above_iu_per_l"]}):
        return []  # the pregnancy card speaks
    limit = number(settings, TEST_DEFAULTS, "hcg_positive_above_iu_per_l")
    window = number(settings, TEST_DEFAULTS, "negative_test_within_days")
    tests = hcg_tests(snapshot)
    if any(hcg_result(t, limit) is False and within_days(snapshot, t.effective, window) for t in tests):
        return []
    last = tests[0] if tests else None
    params = {
        "age": str(age),
        "status": f"{status.state} ({status.basis})",
        "days": f"{window:g}",
        "last_test": shown(last.evidence) if last else "none on record",
    }
    return [Finding("pregnancy-test-missing", params, (*status.evidence, *((last.evidence,) if last else ())))]


def _breastfeeding_records(
    snapshot: PatientSnapshot, max_age_days: float
) -> list[tuple[datetime | None, bool, Evidence]]:
    """(date, breastfeeding?, evidence) for each lactation record: active conditions and status answers."""
    records = [(c.date, True, c.evidence) for c in snapshot.conditions_with("lactation") if is_active(c)]
    for lab in snapshot.labs_for("breastfeeding-status"):
        if not within_days(snapshot, lab.effective, max_age_days):
            continue
        if "status-breastfeeding" in lab.result_concepts:
            records.append((lab.effective, True, lab.evidence))
        elif "status-not-breastfeeding" in lab.result_concepts:
            records.append((lab.effective, False, lab.evidence))
    return records


def evaluate_breastfeeding(
    snapshot: PatientSnapshot, order: PalbociclibOrder, thresholds: Mapping[str, Threshold]
) -> list[Finding]:
    """Breastfeeding documented and not superseded by a later 'not currently breastfeeding' answer."""
    records = _breastfeeding_records(snapshot, number(thresholds, BREASTFEEDING_DEFAULTS, "status_max_age_days"))
    stopped = max((when for when, feeding, _ in records if not feeding and when is not None), default=None)
    evidence = tuple(
        ev for when, feeding, ev in records if feeding and (when is None or stopped is None or when >= stopped)
    )
    if not evidence:
        return []
    return [Finding("breastfeeding", {"found": listed(evidence)}, evidence)]


RULES: tuple[Rule, ...] = (
    Rule(
        name="pregnancy",
        fires=("pregnancy",),
        needs=frozenset({"patient", "conditions", "pregnancyTests", "reproductiveStatus"}),
        evaluate=evaluate_pregnancy,
        thresholds=PREGNANCY_DEFAULTS,
    ),
    Rule(
        name="pregnancy-test",
        fires=("pregnancy-test-missing",),
        needs=frozenset(
            {
                "patient",
                "conditions",
                "procedures",
                "pregnancyTests",
                "reproductiveStatus",
                "medicationRequests",
                "medicationStatements",
                "medicationHistory",
            }
        ),
        evaluate=evaluate_pregnancy_test,
        thresholds=TEST_DEFAULTS,
    ),
    Rule(
        name="breastfeeding",
        fires=("breastfeeding",),
        needs=frozenset({"conditions", "reproductiveStatus"}),
        evaluate=evaluate_breastfeeding,
        thresholds=BREASTFEEDING_DEFAULTS,
    ),
)
