"""Small helpers the safety rules share: clinical status, ages of records, thresholds, card wording."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from cds_service.rules.base import Threshold
from cds_service.snapshot.model import CodedFact, Evidence, PatientSnapshot

ACTIVE_CLINICAL_STATUSES = frozenset({"active", "recurrence", "relapse"})
"""Condition.clinicalStatus codes that mean the condition is present now."""
SUSPECTED_VERIFICATION = frozenset({"provisional", "differential", "unconfirmed"})
"""Condition.verificationStatus codes that mean the diagnosis is suspected, not confirmed."""
DONE_PROCEDURE_STATUSES = frozenset({"completed"})


def is_active(fact: CodedFact) -> bool:
    """A condition that is present now; a record without a clinical status counts as present."""
    return fact.status is None or fact.status in ACTIVE_CLINICAL_STATUSES


def is_done(fact: CodedFact) -> bool:
    """A procedure that was performed (or whose status is not stated)."""
    return fact.status is None or fact.status in DONE_PROCEDURE_STATUSES


def days_before(snapshot: PatientSnapshot, when: datetime | None) -> float | None:
    """How many days before the evaluation time ``when`` is (negative when it is later)."""
    if when is None:
        return None
    return (snapshot.as_of - when).total_seconds() / 86400.0


def within_days(snapshot: PatientSnapshot, when: datetime | None, days: float) -> bool:
    age = days_before(snapshot, when)
    return age is not None and age <= days


def number(thresholds: Mapping[str, Threshold], defaults: Mapping[str, Threshold], key: str) -> float:
    """A numeric threshold, the site's value when it set one."""
    value = thresholds.get(key, defaults[key])
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"threshold {key} must be a number")
    return float(value)


def shown(evidence: Evidence) -> str:
    """One record as the card's text names it: what it says and its date."""
    when = evidence.date.date().isoformat() if evidence.date else "undated"
    return f"{evidence.description}, {when}"


def listed(evidence: Iterable[Evidence]) -> str:
    return "; ".join(shown(e) for e in dict.fromkeys(evidence))


def mg(value: float) -> str:
    return f"{value:g} mg"
