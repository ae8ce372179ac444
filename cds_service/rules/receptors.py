"""Tumour receptor status: palbociclib is for HR-positive, HER2-negative breast cancer.

Source: IBRANCE US prescribing information §1 (indications); clinical brief §4.1-4.2. Receptor status
comes from LOINC-coded Observations (coded or text results) and from ICD-10-CM Z17.* conditions. For each
marker the most recent dated result leads.

Two more checks read the same results:

- HER2 equivocal: the latest HER2 IHC (or HER2 interpretation) is 2+ / equivocal and no ISH result is dated
  at or after it (ASCO/CAP: an equivocal IHC is resolved by ISH).
- Discordance between specimens: a specimen is the site an Observation names (``LabResult.site``); results
  without a site, and Z17 conditions, are not compared. Per site the newest definitive (positive or
  negative) result counts; the most recent *metastatic* site leads (a site whose text does not name the
  breast or a primary tumour, or names a metastasis; clinical brief §4.2 [P]). The card fires when the
  leading result argues against palbociclib (ER negative with PR not positive, or HER2 positive) while
  another specimen gave the opposite result. It then carries the ER-negative / HER2-positive message as a
  warning, and the receptor-status rule does not add its critical card for the same marker (brief §7 #40
  expects a single warning). The other direction (ER negative on the old primary, ER positive on the
  newer metastasis) raises nothing: the leading result supports palbociclib.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from cds_service.rules.base import Finding, Rule, Threshold
from cds_service.snapshot.model import Evidence, LabResult, PalbociclibOrder, PatientSnapshot

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
    site: str | None = None
    """The specimen's site as the Observation gives it; ``None`` for conditions and unsited results."""

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
            found[marker].append(ReceptorResult(marker, statuses.pop(), lab.evidence, lab.site or None))
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
    # A discordant marker gets the receptor-discordant warning instead of the critical card.
    discordant = {d.marker for d in discordances(results)}

    hormone_evidence = tuple(r.evidence for r in (er, pr, hr) if r is not None)
    hormone_positive = _hormone_positive(er, pr, hr)
    if hormone_positive is False and "er" not in discordant:
        findings.append(Finding("receptor-er-negative", params, hormone_evidence))

    if her2 is not None and her2.status == "positive" and "her2" not in discordant:
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


# ---------------------------------------------------------------------------------------- HER2 equivocal
_HER2_SCREENS = ("her2-ihc", "her2-interpretation")


def _lab_status(lab: LabResult) -> Status | None:
    statuses = {_RESULT_STATUS[c] for c in lab.result_concepts if c in _RESULT_STATUS}
    return statuses.pop() if len(statuses) == 1 else None


def evaluate_her2_equivocal(
    snapshot: PatientSnapshot, order: PalbociclibOrder, _: Mapping[str, Threshold]
) -> list[Finding]:
    """The latest HER2 IHC (or interpretation) is equivocal and no ISH is dated at or after it."""
    screens = [lab for lab in snapshot.labs if lab.concept in _HER2_SCREENS and _lab_status(lab) is not None]
    # Newest first; at the same time a definitive result (e.g. the pathologist's interpretation) leads.
    latest_screen = max(
        screens,
        key=lambda lab: ((lab.effective or _UNDATED).timestamp(), _lab_status(lab) != "equivocal"),
        default=None,
    )
    if latest_screen is None or _lab_status(latest_screen) != "equivocal":
        return []
    since = latest_screen.effective or _UNDATED
    if any((ish.effective or _UNDATED) >= since for ish in snapshot.labs_for("her2-ish")):
        return []
    results = receptor_results(snapshot)
    er, pr, her2 = (next(iter(results[m]), None) for m in ("er", "pr", "her2"))
    if her2 is not None and her2.status == "positive":
        return []  # the HER2-positive card speaks
    params = {
        "her2_ihc": _shown(ReceptorResult("her2", "equivocal", latest_screen.evidence, latest_screen.site)),
        "er": _shown(er),
        "pr": _shown(pr),
    }
    return [Finding("receptor-her2-equivocal", params, (latest_screen.evidence,))]


# ------------------------------------------------------------------------------------------- discordance
_DEFINITIVE: frozenset[Status] = frozenset({"positive", "negative"})
_AGAINST_PALBOCICLIB: dict[Marker, Status] = {"er": "negative", "her2": "positive"}
_MARKER_NAMES: dict[Marker, str] = {"er": "ER", "her2": "HER2", "pr": "PR", "hr": "HR"}


def is_metastatic_site(site: str) -> bool:
    """A site that names a metastasis, or names neither the breast nor a primary tumour (liver, bone, ...)."""
    text = site.casefold()
    if "metasta" in text:
        return True
    return not any(word in text for word in ("breast", "mammary", "primary"))


def _site_key(site: str) -> str:
    return " ".join(site.casefold().split())


@dataclass(frozen=True, slots=True)
class Discordance:
    marker: Marker
    leading: ReceptorResult
    """The most recent result of a metastatic site (else the most recent sited result)."""
    others: tuple[ReceptorResult, ...]
    """The newest result of each other site that says the opposite."""


def _per_site(results: list[ReceptorResult]) -> list[ReceptorResult]:
    """The newest definitive result of each site, newest first (``results`` are sorted newest first)."""
    seen: dict[str, ReceptorResult] = {}
    for result in results:
        if result.site and result.status in _DEFINITIVE:
            seen.setdefault(_site_key(result.site), result)
    return list(seen.values())


def discordances(results: dict[Marker, list[ReceptorResult]]) -> list[Discordance]:
    """ER or HER2 results that differ between specimens, when the leading one argues against palbociclib."""
    found: list[Discordance] = []
    for marker, against in _AGAINST_PALBOCICLIB.items():
        sites = _per_site(results[marker])
        metastatic = [r for r in sites if r.site and is_metastatic_site(r.site)]
        leading = next(iter(metastatic or sites), None)
        if leading is None or leading.status != against:
            continue
        if marker == "er" and any(pr.status == "positive" for pr in results["pr"][:1]):
            continue  # ER-/PR+ is hormone-receptor positive
        others = tuple(r for r in sites if r is not leading and r.status != leading.status)
        if others:
            found.append(Discordance(marker, leading, others))
    return found


def _specimen(result: ReceptorResult) -> str:
    when = result.evidence.date.date().isoformat() if result.evidence.date else "undated"
    return f"{result.status} on {result.site or 'unnamed site'} ({when})"


_CONSEQUENCE: dict[Marker, str] = {
    "er": "If the leading result stands, the tumour is hormone-receptor negative and palbociclib is not "
    "indicated (it is labelled only for HR-positive disease).",
    "her2": "If the leading result stands, the tumour is HER2-positive: palbociclib is labelled only for "
    "HER2-negative disease, and HER2-directed therapy is the standard.",
}


def evaluate_discordance(
    snapshot: PatientSnapshot, order: PalbociclibOrder, _: Mapping[str, Threshold]
) -> list[Finding]:
    results = receptor_results(snapshot)
    er, pr, her2 = (next(iter(results[m]), None) for m in ("er", "pr", "her2"))
    findings = []
    for item in discordances(results):
        params = {
            "marker": _MARKER_NAMES[item.marker],
            "leading_status": item.leading.status,
            "other_status": item.others[0].status,
            "leading_label": "the latest metastatic biopsy"
            if item.leading.site and is_metastatic_site(item.leading.site)
            else "the latest biopsy",
            "leading": _specimen(item.leading),
            "others": "; ".join(_specimen(r) for r in item.others),
            "consequence": _CONSEQUENCE[item.marker],
            "er": _shown(er),
            "pr": _shown(pr),
            "her2": _shown(her2),
        }
        evidence = (item.leading.evidence, *(r.evidence for r in item.others))
        findings.append(Finding("receptor-discordant", params, evidence))
    return findings


RULES: tuple[Rule, ...] = (
    Rule(
        name="receptor-status",
        fires=("receptor-er-negative", "receptor-her2-positive", "receptor-status-unknown"),
        needs=frozenset({"conditions", "receptors"}),
        evaluate=evaluate,
    ),
    Rule(
        name="her2-ish-confirmation",
        fires=("receptor-her2-equivocal",),
        needs=frozenset({"conditions", "receptors"}),
        evaluate=evaluate_her2_equivocal,
    ),
    Rule(
        name="receptor-discordance",
        fires=("receptor-discordant",),
        needs=frozenset({"conditions", "receptors"}),
        evaluate=evaluate_discordance,
    ),
)
