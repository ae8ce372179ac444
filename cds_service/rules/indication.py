"""Indication: palbociclib is for advanced or metastatic breast cancer.

Source: IBRANCE US prescribing information §1 (adults with HR-positive, HER2-negative *advanced or
metastatic* breast cancer); clinical brief §4.1-4.2 and §7 #44.

- ``indication-no-breast-cancer``: no breast-cancer Condition (SNOMED 254837009 family, ICD-10-CM C50.*)
  whose clinical status is active, recurrence or relapse, or not recorded. A remission / resolved /
  inactive entry alone does not count.
- ``indication-not-advanced``: a breast-cancer diagnosis is on record but nothing shows advanced disease:
  no secondary-malignancy Condition (C77-C79, C7B, SNOMED metastasis codes; any clinical status, since
  metastatic disease in remission is still metastatic breast cancer), no TNM stage group IV Observation
  (LOINC 21908-9 / 21902-2 / 21914-7), and no breast-cancer Condition whose text or code display says
  metastatic, stage IV or (locally) advanced. No verified code for "locally advanced" was found, so that
  is read from the diagnosis text only. Adjuvant (early-stage) use is not labelled. The rule stays quiet
  when the breast-cancer diagnosis itself is missing: the other card speaks then.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from cds_service.rules.base import Finding, Rule, Threshold
from cds_service.snapshot.model import CodedFact, Evidence, LabResult, PalbociclibOrder, PatientSnapshot

ACTIVE_STATUSES = frozenset({"active", "recurrence", "relapse"})
_ADVANCED_WORDS = re.compile(r"\bmetasta|\bstage\s*(?:iv|4)\b|\badvanced\b", re.IGNORECASE)
_NEGATED = re.compile(r"\b(?:no|non|not|without)[\s-]+(?:evidence\s+of\s+)?(?:metasta|advanced)", re.IGNORECASE)


def _day(evidence: Evidence) -> str:
    return evidence.date.date().isoformat() if evidence.date else "undated"


def active_breast_cancer(snapshot: PatientSnapshot) -> list[CodedFact]:
    """Breast-cancer diagnoses that are active, recurrent or relapsed, or carry no clinical status."""
    return [
        c
        for c in snapshot.conditions_with("breast-cancer")
        if c.status is None or c.status.casefold() in ACTIVE_STATUSES
    ]


def evaluate_diagnosis(snapshot: PatientSnapshot, order: PalbociclibOrder, _: Mapping[str, Threshold]) -> list[Finding]:
    if active_breast_cancer(snapshot):
        return []
    inactive = snapshot.conditions_with("breast-cancer")
    shown = "; ".join(f"{c.evidence.description}, clinical status {c.status}" for c in inactive)
    return [
        Finding(
            "indication-no-breast-cancer",
            {"other": shown or "no breast-cancer diagnosis of any status"},
            tuple(c.evidence for c in inactive),
        )
    ]


def _says_advanced(condition: CodedFact) -> bool:
    texts = [condition.text or "", *(code.display or "" for code in condition.codes)]
    return any(_ADVANCED_WORDS.search(_NEGATED.sub(" ", t)) for t in texts)


def _stage_iv(snapshot: PatientSnapshot) -> list[LabResult]:
    return [lab for lab in snapshot.labs_for("tnm-stage-group") if "stage-iv" in lab.result_concepts]


def evaluate_advanced(snapshot: PatientSnapshot, order: PalbociclibOrder, _: Mapping[str, Threshold]) -> list[Finding]:
    diagnoses = active_breast_cancer(snapshot)
    if not diagnoses:
        return []
    if snapshot.conditions_with("secondary-malignancy") or _stage_iv(snapshot):
        return []
    if any(_says_advanced(c) for c in diagnoses):
        return []
    stages = snapshot.labs_for("tnm-stage-group")  # newest first; none of them is stage IV
    params = {
        "diagnosis": "; ".join(f"{c.evidence.description}, since {_day(c.evidence)}" for c in diagnoses),
        "stage": f"{stages[0].original or 'no value'} ({_day(stages[0].evidence)})" if stages else "not on record",
    }
    evidence = (*(c.evidence for c in diagnoses), *(s.evidence for s in stages[:1]))
    return [Finding("indication-not-advanced", params, evidence)]


RULES: tuple[Rule, ...] = (
    Rule(
        name="breast-cancer-diagnosis",
        fires=("indication-no-breast-cancer",),
        needs=frozenset({"conditions"}),
        evaluate=evaluate_diagnosis,
    ),
    Rule(
        name="advanced-disease",
        fires=("indication-not-advanced",),
        needs=frozenset({"conditions", "staging"}),
        evaluate=evaluate_advanced,
    ),
)
