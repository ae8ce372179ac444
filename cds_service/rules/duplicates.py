"""Duplicate CDK4/6 therapy and prior CDK4/6 therapy.

Sources: IBRANCE US prescribing information §1; clinical brief §4.2-4.3 and §7 #36-39; PALMIRA
(Llombart-Cussac et al., ASCO 2023 abstract 1001; J Clin Oncol 2025) and PADA-1 (Bidard et al., Lancet
Oncol 2022;23:1367-77).

- ``duplicate-cdk46`` (critical): ribociclib or abemaciclib is current — an active or on-hold order, an
  active medication-list entry, or a draft in this order set.
- ``duplicate-palbociclib`` (warning): another current palbociclib order, draft or medication-list entry
  that this draft does not replace. The draft replaces the orders it names in ``priorPrescription``; when
  it replaces a current order, palbociclib entries on the medication list are taken to describe that same
  therapy (a statement cannot say which order it follows).
- ``progression-on-cdk46`` (warning): disease progression (mCODE CancerDiseaseStatus, LOINC 97509-4 /
  88040-1, value "condition worsened") documented during exposure to palbociclib, ribociclib or
  abemaciclib (current or past orders and medication-list entries) or within ``progression_window_days``
  after it ended. Progression documented before the CDK4/6 inhibitor started (PALOMA-3 population) does
  not count. When either date is missing the progression counts.
- ``esr1-mutation-on-ai`` (info): an ESR1 variant detected in ctDNA (LOINC 69548-6 with gene studied
  48018-6 = HGNC:3467) while an aromatase inhibitor and palbociclib are current (palbociclib current, or
  replaced by this draft), no fulvestrant, and no progression documented since palbociclib started.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from cds_service.rules.base import Finding, Rule, Threshold
from cds_service.snapshot.model import Evidence, LabResult, MedicationUse, PalbociclibOrder, PatientSnapshot

OTHER_CDK46 = ("ribociclib", "abemaciclib")
PROGRESSION = "disease-progression"
ESR1_DETECTED = frozenset({"detected", "positive", "variant-present"})
ESR1_NOT_DETECTED = frozenset({"not-detected", "negative", "variant-absent"})
_ORDER_SOURCES = ("request", "draft")


def _day(moment: datetime | None) -> str:
    return moment.date().isoformat() if moment else "undated"


def _period(use: MedicationUse) -> str:
    start = _day(use.started or use.evidence.date)
    return f"{start} to {_day(use.ended)}" if use.ended else f"since {start}"


def _listed(uses: Iterable[MedicationUse]) -> str:
    return "; ".join(f"{m.evidence.description}, {_period(m)}" for m in uses)


def _target(uses: Iterable[MedicationUse]) -> str:
    """The order a suggestion may stop: the first request or draft with an id (statements are not orders)."""
    for use in uses:
        if use.source in _ORDER_SOURCES and use.evidence.resource_id:
            return use.evidence.reference
    return ""


# ------------------------------------------------------------------------------------------- duplicates
def evaluate_cdk46(snapshot: PatientSnapshot, order: PalbociclibOrder, _: Mapping[str, Threshold]) -> list[Finding]:
    current = [m for m in snapshot.medications_in(*OTHER_CDK46) if m.is_current]
    if not current:
        return []
    params = {
        "drug": " and ".join(sorted({i for m in current for i in m.ingredients if i in OTHER_CDK46})),
        "current": _listed(current),
        "target_reference": _target(current),
    }
    return [Finding("duplicate-cdk46", params, tuple(m.evidence for m in current))]


def evaluate_palbociclib(
    snapshot: PatientSnapshot, order: PalbociclibOrder, _: Mapping[str, Threshold]
) -> list[Finding]:
    current = [m for m in snapshot.medications_in("palbociclib") if m.is_current]
    replaced = set(order.replaces)
    renews = any(m.evidence.reference in replaced for m in current)
    others = [m for m in current if m.evidence.reference not in replaced and not (renews and m.source == "statement")]
    if not others:
        return []
    params = {"current": _listed(others), "target_reference": _target(others)}
    return [Finding("duplicate-palbociclib", params, tuple(m.evidence for m in others))]


# ---------------------------------------------------------------------------------------- prior therapy
def progression_results(snapshot: PatientSnapshot) -> list[LabResult]:
    """Disease-status observations that document progression, newest first."""
    return [lab for lab in snapshot.labs_for("cancer-disease-status") if PROGRESSION in lab.result_concepts]


def _start(use: MedicationUse) -> datetime | None:
    return use.started or use.evidence.date


def _during(progression: LabResult, use: MedicationUse, window: timedelta) -> bool:
    """Progression documented while the drug was taken or within ``window`` after it ended."""
    when, start = progression.effective, _start(use)
    if when is None or start is None:
        return True
    if when < start:
        return False
    return use.is_current or use.ended is None or when <= use.ended + window


def evaluate_progression(
    snapshot: PatientSnapshot, order: PalbociclibOrder, thresholds: Mapping[str, Threshold]
) -> list[Finding]:
    window = timedelta(days=float(thresholds.get("progression_window_days", 90)))
    exposures = [m for m in snapshot.medications_in("cdk46-inhibitor") if m.source != "draft"]
    pairs = [(p, m) for p in progression_results(snapshot) for m in exposures if _during(p, m, window)]
    if not pairs:
        return []
    progression = pairs[0][0]  # the newest progression that follows CDK4/6-inhibitor exposure
    treated = list(dict.fromkeys(m for p, m in pairs if p is progression))
    params = {
        "exposure": _listed(treated),
        "progression": f"{progression.original or 'progression'} ({_day(progression.effective)})",
    }
    return [Finding("progression-on-cdk46", params, (progression.evidence, *(m.evidence for m in treated)))]


def _key(lab: LabResult) -> tuple[str, datetime | None]:
    """The Observation a result came from: an Observation's components share its reference and time."""
    return (lab.evidence.reference, lab.effective)


def _esr1_results(snapshot: PatientSnapshot) -> list[LabResult]:
    """Variant assessments whose gene-studied component is ESR1, newest first."""
    esr1 = {_key(lab) for lab in snapshot.labs_for("gene-studied") if "gene-esr1" in lab.result_concepts}
    return [lab for lab in snapshot.labs_for("esr1-variant") if _key(lab) in esr1]


def _variant_shown(snapshot: PatientSnapshot, variant: LabResult) -> str:
    """The variant result with its amino-acid (or DNA) change when the Observation gives one."""
    changes = [
        lab.original
        for concept in ("amino-acid-change-phgvs", "dna-change-chgvs")
        for lab in snapshot.labs_for(concept)
        if _key(lab) == _key(variant) and lab.original
    ]
    shown = variant.original or "detected"
    return f"{shown}: {changes[0]}" if changes else shown


def _palbociclib_therapy(snapshot: PatientSnapshot, order: PalbociclibOrder) -> list[MedicationUse]:
    """Palbociclib the patient is on: current, or the order this draft renews."""
    replaced = set(order.replaces)
    return [
        m
        for m in snapshot.medications_in("palbociclib")
        if (m.is_current and m.source != "draft") or m.evidence.reference in replaced
    ]


def _since(moment: datetime | None, start: datetime | None) -> bool:
    return moment is None or start is None or moment >= start


def _esr1_detected(snapshot: PatientSnapshot, start: datetime | None) -> LabResult | None:
    """The latest ESR1 result, when it shows a variant and dates from the palbociclib therapy."""
    for lab in _esr1_results(snapshot):
        if lab.result_concepts & ESR1_DETECTED and not lab.result_concepts & ESR1_NOT_DETECTED:
            return lab if _since(lab.effective, start) else None
        if lab.result_concepts & ESR1_NOT_DETECTED:
            return None
    return None


def evaluate_esr1(snapshot: PatientSnapshot, order: PalbociclibOrder, _: Mapping[str, Threshold]) -> list[Finding]:
    palbociclib = _palbociclib_therapy(snapshot, order)
    inhibitors = [m for m in snapshot.medications_in("aromatase-inhibitor") if m.is_current]
    if not palbociclib or not inhibitors:
        return []
    if any(m.is_current for m in snapshot.medications_in("fulvestrant")):
        return []
    starts = [s for s in (_start(m) for m in palbociclib) if s is not None]
    start = min(starts) if len(starts) == len(palbociclib) else None
    variant = _esr1_detected(snapshot, start)
    if variant is None:
        return []
    if any(_since(p.effective, start) for p in progression_results(snapshot)):
        return []  # progression: the PALMIRA card applies, not PADA-1
    params = {
        "esr1": f"{_variant_shown(snapshot, variant)} ({_day(variant.effective)})",
        "aromatase_inhibitor": _listed(inhibitors),
        "palbociclib": _listed(palbociclib),
        "target_reference": _target(inhibitors),
    }
    evidence: tuple[Evidence, ...] = (variant.evidence, *(m.evidence for m in (*inhibitors, *palbociclib)))
    return [Finding("esr1-mutation-on-ai", params, evidence)]


RULES: tuple[Rule, ...] = (
    Rule(
        name="duplicate-cdk46",
        fires=("duplicate-cdk46",),
        needs=frozenset({"medicationRequests", "medicationStatements"}),
        evaluate=evaluate_cdk46,
    ),
    Rule(
        name="duplicate-palbociclib",
        fires=("duplicate-palbociclib",),
        needs=frozenset({"medicationRequests", "medicationStatements"}),
        evaluate=evaluate_palbociclib,
    ),
    Rule(
        name="prior-cdk46-progression",
        fires=("progression-on-cdk46",),
        needs=frozenset({"medicationRequests", "medicationStatements", "medicationHistory", "diseaseStatus"}),
        evaluate=evaluate_progression,
        thresholds={"progression_window_days": 90},
    ),
    Rule(
        name="esr1-switch",
        fires=("esr1-mutation-on-ai",),
        needs=frozenset({"medicationRequests", "medicationStatements", "medicationHistory", "esr1", "diseaseStatus"}),
        evaluate=evaluate_esr1,
    ),
)
