"""Tumour receptor status: palbociclib is for HR-positive, HER2-negative breast cancer.

Source: IBRANCE US prescribing information §1 (indications); clinical brief §4.1-4.2. Receptor status
comes from LOINC-coded Observations (coded or text results) and from ICD-10-CM Z17.* conditions. For each
marker the most recent dated result leads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from cds_service.rules.base import Finding, Rule, Threshold
from cds_service.snapshot.model import Evidence, PalbociclibOrder, PatientSnapshot

Marker = Literal["er", "pr", "hr", "her2"]
Status = Literal["positive", "negative", "equivocal"]

# Observation concept -> marker; result concept -> status.
_LAB_MARKERS: dict[str, Marker] = {
    "er-status": "er",
    "pr-status": "pr",
    "her2-ihc": "her2",
    "her2-interpretation": "her2",
    "her2-ish": "her2",
}
_RESULT_STATUS: dict[str, Status] = {
    "positive": "positive",
    "low-positive": "positive",
    "negative": "negative",
    "equivocal": "equivocal",
    "her2-ihc-3plus": "positive",
    "her2-ihc-2plus": "equivocal",
    "her2-ihc-1plus": "negative",
    "her2-ihc-0": "negative",
    "detected": "positive",
    "not-detected": "negative",
}
# Condition concept (ICD-10-CM Z17.*, SNOMED tumour findings) -> what it says about each marker.
_CONDITION_MARKERS: dict[str, tuple[tuple[Marker, Status], ...]] = {
    "er-positive": (("er", "positive"),),
    "er-negative": (("er", "negative"),),
    "pr-positive": (("pr", "positive"),),
    "pr-negative": (("pr", "negative"),),
    "her2-positive": (("her2", "positive"),),
    "her2-negative": (("her2", "negative"),),
    "hr-positive-her2-negative": (("hr", "positive"), ("her2", "negative")),
    "hr-positive-her2-positive": (("hr", "positive"), ("her2", "positive")),
    "hr-negative-her2-positive": (("hr", "negative"), ("her2", "positive")),
    "hr-negative-her2-negative": (("hr", "negative"), ("her2", "negative")),
}
_UNDATED = datetime(1, 1, 1, tzinfo=UTC)
_LEADING = {"positive": 0, "negative": 0, "equivocal": 1}
"""At the same date a definitive HER2 result (e.g. ISH) leads over an equivocal IHC."""


@dataclass(frozen=True, slots=True)
class ReceptorResult:
    marker: Marker
    status: Status
    evidence: Evidence

    @property
    def date(self) -> datetime:
        return self.evidence.date or _UNDATED

    def sort_key(self) -> tuple[float, int]:
        return (-self.date.timestamp(), _LEADING[self.status])


def receptor_results(snapshot: PatientSnapshot) -> dict[Marker, list[ReceptorResult]]:
    """Every receptor result on record, per marker, most recent first."""
    found: dict[Marker, list[ReceptorResult]] = {"er": [], "pr": [], "hr": [], "her2": []}
    for lab in snapshot.labs:
        marker = _LAB_MARKERS.get(lab.concept)
        statuses = {_RESULT_STATUS[c] for c in lab.result_concepts if c in _RESULT_STATUS}
        if marker is not None and len(statuses) == 1:
            found[marker].append(ReceptorResult(marker, statuses.pop(), lab.evidence))
    for condition in snapshot.conditions:
        for concept in condition.concepts:
            for marker, status in _CONDITION_MARKERS.get(concept, ()):
                found[marker].append(ReceptorResult(marker, status, condition.evidence))
    for results in found.values():
        results.sort(key=ReceptorResult.sort_key)
    return found


def _shown(result: ReceptorResult | None) -> str:
    if result is None:
        return "not on record"
    when = result.evidence.date.date().isoformat() if result.evidence.date else "undated"
    return f"{result.status} ({result.evidence.description}, {when})"


def _hormone_positive(er: ReceptorResult | None, pr: ReceptorResult | None, hr: ReceptorResult | None) -> bool | None:
    """HR-positive means ER- or PR-positive. A combined HR code (Z17.41x/42x) newer than the latest ER
    result leads; an ER-negative tumour with a positive PR is HR-positive."""
    pr_positive = pr is not None and pr.status == "positive"
    if hr is not None and (er is None or hr.date > er.date):
        return hr.status == "positive" or pr_positive
    if er is None:
        return True if pr_positive else None
    if er.status == "positive" or pr_positive:
        return True
    return None if er.status == "equivocal" else False


def evaluate(snapshot: PatientSnapshot, order: PalbociclibOrder, _: Mapping[str, Threshold]) -> list[Finding]:
    results = receptor_results(snapshot)
    er, pr, hr, her2 = (next(iter(results[m]), None) for m in ("er", "pr", "hr", "her2"))
    params = {"er": _shown(er), "pr": _shown(pr), "her2": _shown(her2)}
    findings: list[Finding] = []

    hormone_evidence = tuple(r.evidence for r in (er, pr, hr) if r is not None)
    hormone_positive = _hormone_positive(er, pr, hr)
    if hormone_positive is False:
        findings.append(Finding("receptor-er-negative", params, hormone_evidence))

    if her2 is not None and her2.status == "positive":
        findings.append(Finding("receptor-her2-positive", params, (her2.evidence,)))

    unknown = [
        name
        for name, missing in (("hormone receptor (ER)", hormone_positive is None), ("HER2", her2 is None))
        if missing
    ]
    if unknown:
        evidence = hormone_evidence + ((her2.evidence,) if her2 else ())
        findings.append(Finding("receptor-status-unknown", {**params, "missing": " and ".join(unknown)}, evidence))
    return findings


RULES: tuple[Rule, ...] = (
    Rule(
        name="receptor-status",
        fires=("receptor-er-negative", "receptor-her2-positive", "receptor-status-unknown"),
        needs=frozenset({"conditions", "receptors"}),
        evaluate=evaluate,
    ),
)
