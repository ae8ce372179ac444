"""Organ safety: severe hepatic impairment, interstitial lung disease / pneumonitis, dialysis.

Sources: IBRANCE US prescribing information §2.2 and §8.6 (Child-Pugh C: 75 mg once daily, 21 days on /
7 off; no adjustment for Child-Pugh A or B), §5.2 and §2.2 (ILD/pneumonitis: interrupt when suspected,
permanently discontinue when severe), §8.7 (no adjustment for CrCl >= 15 mL/min; not studied in patients
requiring haemodialysis); clinical brief §3, behaviours 48-50.

Child-Pugh class C is read by the convention documented in valuesets/conditions.safety.yaml: the newest of
a Child-Pugh Observation (LOINC 98153-0, class A/B/C) and an active severe-hepatic-impairment Condition
(chronic hepatic failure) leads; class A or B gives no card.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime

from cds_service.rules.base import Finding, Indicator, Rule, Threshold
from cds_service.rules.safety_common import (
    SUSPECTED_VERIFICATION,
    is_active,
    is_done,
    listed,
    mg,
    number,
    within_days,
)
from cds_service.snapshot.model import CodedFact, Evidence, PalbociclibOrder, PatientSnapshot

# ------------------------------------------------------------------ hepatic

CHILD_PUGH_C_DOSE_MG = 75.0
"""Label dose for severe hepatic impairment (USPI §2.2, §8.6)."""
_CHILD_PUGH_CLASSES = {"child-pugh-a": "A", "child-pugh-b": "B", "child-pugh-c": "C"}
_UNDATED = datetime(1, 1, 1, tzinfo=UTC)


def child_pugh_records(snapshot: PatientSnapshot) -> list[tuple[datetime | None, str, Evidence]]:
    """(date, class, evidence) from Child-Pugh observations and severe-hepatic-impairment conditions,
    newest first (undated last); at the same date an observation leads."""
    records: list[tuple[datetime | None, str, Evidence, int]] = []
    for lab in snapshot.labs_for("child-pugh-class"):
        classes = {_CHILD_PUGH_CLASSES[c] for c in lab.result_concepts if c in _CHILD_PUGH_CLASSES}
        if len(classes) == 1:
            records.append((lab.effective, classes.pop(), lab.evidence, 0))
    for condition in snapshot.conditions_with("severe-hepatic-impairment"):
        if is_active(condition):
            records.append((condition.date, "C", condition.evidence, 1))
    records.sort(key=lambda r: (-(r[0] or _UNDATED).timestamp(), r[3]))
    return [(when, klass, ev) for when, klass, ev, _ in records]


def evaluate_hepatic(snapshot: PatientSnapshot, order: PalbociclibOrder, _: Mapping[str, Threshold]) -> list[Finding]:
    records = child_pugh_records(snapshot)
    if not records or records[0][1] != "C":
        return []
    schedule = order.details.schedule
    daily = schedule.daily_dose_mg if schedule else None
    if daily is not None and daily <= CHILD_PUGH_C_DOSE_MG:
        return []
    params = {
        "found": listed([records[0][2]]),
        "dose": f"{mg(daily)} per day" if daily is not None else "not stated in the order",
    }
    return [Finding("hepatic-impairment-severe", params, (records[0][2], order.evidence))]


# ------------------------------------------------------------------ ILD / pneumonitis

ILD_CONCEPTS = ("interstitial-lung-disease", "pneumonitis")
SNOMED_SYSTEMS = frozenset(
    {"http://snomed.info/sct", "https://snomed.info/sct", "http://snomed.info/sct/", "urn:oid:2.16.840.1.113883.6.96"}
)
SEVERE_SEVERITY_CODES = frozenset({"24484000", "442452003", "399166001"})
"""SNOMED CT severe, life-threatening, fatal (= CTCAE grade 3, 4, 5); listed in result_values.safety.yaml."""
_SEVERE_WORDS = re.compile(r"\b(severe|life[- ]threatening|fatal)\b", re.IGNORECASE)
_GRADE = re.compile(r"\bgrade\s*([1-5])\b", re.IGNORECASE)


def ild_is_severe(fact: CodedFact) -> bool:
    """Severity coded severe / life-threatening / fatal, or a stated grade of 3 or more."""
    if any(c.code in SEVERE_SEVERITY_CODES and c.system.strip() in SNOMED_SYSTEMS for c in fact.severity):
        return True
    texts = [fact.severity_text or "", *(c.display or "" for c in fact.severity)]
    for text in texts:
        grade = _GRADE.search(text)
        if (grade and int(grade.group(1)) >= 3) or (not grade and _SEVERE_WORDS.search(text)):
            return True
    return False


def _severity_words(fact: CodedFact) -> str:
    stated = fact.severity_text or next((c.display for c in fact.severity if c.display), None)
    return f"severity: {stated or 'not recorded'}; verification: {fact.verification or 'not recorded'}"


def evaluate_ild(snapshot: PatientSnapshot, order: PalbociclibOrder, _: Mapping[str, Threshold]) -> list[Finding]:
    active = [c for c in snapshot.conditions if any(concept in c.concepts for concept in ILD_CONCEPTS) and is_active(c)]
    if not active:
        return []
    severe = [c for c in active if ild_is_severe(c) and c.verification not in SUSPECTED_VERIFICATION]
    shown = severe or active
    params = {
        "found": listed(c.evidence for c in shown),
        "severity": "; ".join(_severity_words(c) for c in shown),
    }
    indicator: Indicator = "critical" if severe else "warning"
    return [Finding("ild-pneumonitis", params, tuple(c.evidence for c in shown), indicator=indicator)]


# ------------------------------------------------------------------ dialysis

DIALYSIS_DEFAULTS: dict[str, Threshold] = {"procedure_within_days": 30}


def evaluate_dialysis(
    snapshot: PatientSnapshot, order: PalbociclibOrder, thresholds: Mapping[str, Threshold]
) -> list[Finding]:
    window = number(thresholds, DIALYSIS_DEFAULTS, "procedure_within_days")
    evidence = [c.evidence for c in snapshot.conditions_with("dialysis-dependence") if is_active(c)]
    evidence += [
        p.evidence
        for p in snapshot.procedures
        if "haemodialysis" in p.concepts and is_done(p) and within_days(snapshot, p.date, window)
    ]
    if not evidence:
        return []
    return [Finding("renal-dialysis", {"found": listed(evidence)}, tuple(evidence))]


RULES: tuple[Rule, ...] = (
    Rule(
        name="hepatic-impairment",
        fires=("hepatic-impairment-severe",),
        needs=frozenset({"conditions", "childPugh"}),
        evaluate=evaluate_hepatic,
    ),
    Rule(
        name="ild-pneumonitis",
        fires=("ild-pneumonitis",),
        needs=frozenset({"conditions"}),
        evaluate=evaluate_ild,
    ),
    Rule(
        name="renal-dialysis",
        fires=("renal-dialysis",),
        needs=frozenset({"conditions", "procedures"}),
        evaluate=evaluate_dialysis,
        thresholds=DIALYSIS_DEFAULTS,
    ),
)
