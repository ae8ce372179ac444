"""Endocrine partner and menopausal status: does the partner fit the patient?

Sources: IBRANCE US prescribing information §1 and §2.1 (an aromatase inhibitor as initial endocrine-based
therapy in postmenopausal women or in men; pre/perimenopausal women on the aromatase-inhibitor or
fulvestrant combination also receive an LHRH agonist; men on the aromatase-inhibitor combination:
consider an LHRH agonist); ASCO 2020 male breast cancer guideline (an aromatase inhibitor with a GnRH
agent); PALOMA-2 eligibility (no recurrence during or within 12 months of adjuvant aromatase-inhibitor
therapy); PATHWAY (palbociclib with tamoxifen). Clinical brief §4.1, §4.2, §4.4.

Partners are taken as the endocrine-partner rule takes them: current (active or on-hold) orders,
medication-list entries and drafts in the same order set.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from cds_service.rules.base import Finding, Indicator, Rule, Threshold
from cds_service.rules.menopause import (
    LHRH_AGONISTS,
    SERMS,
    THRESHOLDS,
    MenopauseCriteria,
    add_months,
    menopausal_status,
    whole_months,
)
from cds_service.snapshot.model import CodedFact, Evidence, MedicationUse, PalbociclibOrder, PatientSnapshot

AROMATASE_INHIBITORS = "aromatase-inhibitor"
FULVESTRANT = "fulvestrant"
GNRH_AGENTS = (LHRH_AGONISTS, "gnrh-antagonist")
_PAST = frozenset({"completed", "stopped"})
_RECURRENCE = "secondary-malignancy"


def current(snapshot: PatientSnapshot, *groups: str) -> tuple[MedicationUse, ...]:
    """Medicines of these groups or ingredients taken now or ordered in this order set."""
    return tuple(m for m in snapshot.medications_in(*groups) if m.is_current)


def names(medications: tuple[MedicationUse, ...]) -> str:
    return ", ".join(sorted({n for m in medications for n in sorted(m.ingredients)})) or "unnamed medicine"


def _day(moment: datetime | None) -> str:
    return moment.date().isoformat() if moment else "undated"


def _bullets(lines: tuple[str, ...]) -> str:
    return "\n".join(f"- {line}" for line in lines)


# ---------------------------------------------------------------------------------------------- menopausal status


def evaluate_menopause(
    snapshot: PatientSnapshot, order: PalbociclibOrder, thresholds: Mapping[str, Threshold]
) -> list[Finding]:
    """ovarian-suppression-missing (pre/perimenopausal woman, AI or fulvestrant, no LHRH agonist) and
    menopausal-status-unconfirmed (AI in a woman under 60 whose menopause is not established)."""
    if snapshot.sex != "female":
        return []
    inhibitors = current(snapshot, AROMATASE_INHIBITORS)
    fulvestrant = current(snapshot, FULVESTRANT)
    if not inhibitors and not fulvestrant:
        return []
    status = menopausal_status(snapshot, MenopauseCriteria.from_thresholds(thresholds))
    partner = inhibitors or fulvestrant
    age = f"age {snapshot.age_years}" if snapshot.age_years is not None else "age not recorded"
    params = {"partner": names(partner), "age": age, "basis": status.basis}
    evidence = (*(m.evidence for m in partner), *status.evidence)

    if status.state in ("premenopausal", "perimenopausal"):
        indicator: Indicator = "critical" if inhibitors else "warning"
        return [
            Finding(
                "ovarian-suppression-missing",
                {**params, "status": status.state},
                evidence,
                indicator=indicator,
            )
        ]
    if status.state == "unknown" and inhibitors:
        return [Finding("menopausal-status-unconfirmed", {**params, "reasons": _bullets(status.reasons)}, evidence)]
    return []


# ---------------------------------------------------------------------------------------------- men


def evaluate_male(snapshot: PatientSnapshot, order: PalbociclibOrder, _: Mapping[str, Threshold]) -> list[Finding]:
    """male-ai-without-gnrh: a man on an aromatase inhibitor without an LHRH agonist or GnRH antagonist."""
    if snapshot.sex != "male":
        return []
    inhibitors = current(snapshot, AROMATASE_INHIBITORS)
    if not inhibitors or current(snapshot, *GNRH_AGENTS):
        return []
    return [Finding("male-ai-without-gnrh", {"partner": names(inhibitors)}, tuple(m.evidence for m in inhibitors))]


# ---------------------------------------------------------------------------------------------- tamoxifen


def evaluate_tamoxifen(snapshot: PatientSnapshot, order: PalbociclibOrder, _: Mapping[str, Threshold]) -> list[Finding]:
    """partner-tamoxifen: tamoxifen or toremifene is the partner (no aromatase inhibitor or fulvestrant)."""
    serms = current(snapshot, *SERMS)
    if not serms or current(snapshot, AROMATASE_INHIBITORS, FULVESTRANT):
        return []
    suppression = current(snapshot, LHRH_AGONISTS)
    note = (
        f"An LHRH agonist ({names(suppression)}) is given too, as for pre/perimenopausal women in PATHWAY."
        if suppression
        else "In PATHWAY, pre/perimenopausal women also received goserelin."
    )
    evidence = tuple(m.evidence for m in (*serms, *suppression))
    return [Finding("partner-tamoxifen", {"partner": names(serms), "suppression": note}, evidence)]


# ---------------------------------------------------------------------------------------------- AI-resistant relapse


def _recurrence(snapshot: PatientSnapshot) -> CodedFact | None:
    dated = [c for c in snapshot.conditions_with(_RECURRENCE) if c.date is not None]
    return min(dated, key=lambda c: c.date.timestamp() if c.date else 0.0) if dated else None


def _end(medication: MedicationUse) -> datetime | None:
    return medication.ended or medication.evidence.date or medication.started


def _adjuvant(medication: MedicationUse, recurrence: datetime) -> bool:
    """A past aromatase inhibitor begun before the recurrence (a renewal written after it is not adjuvant)."""
    if medication.is_current or medication.status not in _PAST:
        return False
    start = medication.started or medication.evidence.date
    if start is not None:
        return start < recurrence
    end = medication.ended
    return end is not None and end <= recurrence


def evaluate_relapse(
    snapshot: PatientSnapshot, order: PalbociclibOrder, thresholds: Mapping[str, Threshold]
) -> list[Finding]:
    """ai-resistant-relapse: an aromatase inhibitor again, after a recurrence during or within 12 months of
    an adjuvant aromatase inhibitor."""
    inhibitors = current(snapshot, AROMATASE_INHIBITORS)
    recurrence = _recurrence(snapshot)
    if not inhibitors or recurrence is None or recurrence.date is None:
        return []
    relapse = recurrence.date
    months = int(thresholds.get("months_after_adjuvant_ai", 12))
    prior = [
        (m, end)
        for m in snapshot.medications_in(AROMATASE_INHIBITORS)
        if _adjuvant(m, relapse) and (end := _end(m)) is not None and end <= snapshot.as_of
    ]
    if not prior:
        return []
    last, end = max(prior, key=lambda item: item[1])
    if relapse > add_months(end, months):
        return []
    gap = whole_months(end, relapse)
    interval = "during" if end >= relapse else (f"{gap} months after" if gap >= 1 else "within a month of")
    target = next((m for m in inhibitors if m.source in ("request", "draft") and m.evidence.resource_id), None)
    params = {
        "partner": names(inhibitors),
        "prior": names((last,)),
        "prior_end": _day(end),
        "recurrence": recurrence.evidence.description,
        "recurrence_date": _day(relapse),
        "interval": interval,
        "months": str(months),
        "target_reference": target.evidence.reference if target else "",
    }
    evidence: tuple[Evidence, ...] = (
        *(m.evidence for m, _ in sorted(prior, key=lambda item: item[1])),
        recurrence.evidence,
        *(m.evidence for m in inhibitors),
    )
    return [Finding("ai-resistant-relapse", params, evidence)]


RULES: tuple[Rule, ...] = (
    Rule(
        name="menopausal-status",
        fires=("ovarian-suppression-missing", "menopausal-status-unconfirmed"),
        needs=frozenset(
            {"patient", "medicationRequests", "medicationStatements", "conditions", "procedures", "hormones"}
        ),
        evaluate=evaluate_menopause,
        thresholds=THRESHOLDS,
    ),
    Rule(
        name="male-endocrine-partner",
        fires=("male-ai-without-gnrh",),
        needs=frozenset({"patient", "medicationRequests", "medicationStatements"}),
        evaluate=evaluate_male,
    ),
    Rule(
        name="tamoxifen-partner",
        fires=("partner-tamoxifen",),
        needs=frozenset({"medicationRequests", "medicationStatements"}),
        evaluate=evaluate_tamoxifen,
    ),
    Rule(
        name="ai-resistant-relapse",
        fires=("ai-resistant-relapse",),
        needs=frozenset({"medicationRequests", "medicationStatements", "medicationHistory", "conditions"}),
        evaluate=evaluate_relapse,
        thresholds={"months_after_adjuvant_ai": 12},
    ),
)
