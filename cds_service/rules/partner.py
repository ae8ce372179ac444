"""Endocrine partner: palbociclib is labelled only with an aromatase inhibitor or fulvestrant.

Source: IBRANCE US prescribing information §1 and §2.1; clinical brief §4.1-4.2. The partner may be an
active or on-hold order, a medication statement, or a draft in the same order set. Tamoxifen is not a
labelled partner but is a partner: its own informational rule speaks of it, not this one.
"""

from __future__ import annotations

from collections.abc import Mapping

from cds_service.rules.base import Finding, Rule, Threshold
from cds_service.snapshot.model import PalbociclibOrder, PatientSnapshot

PARTNER_GROUPS = ("aromatase-inhibitor", "fulvestrant", "tamoxifen", "toremifene")


def evaluate(snapshot: PatientSnapshot, order: PalbociclibOrder, _: Mapping[str, Threshold]) -> list[Finding]:
    partners = [m for m in snapshot.medications_in(*PARTNER_GROUPS) if m.is_current]
    if partners:
        return []
    return [Finding("partner-missing", {})]


RULES: tuple[Rule, ...] = (
    Rule(
        name="endocrine-partner",
        fires=("partner-missing",),
        needs=frozenset({"medicationRequests", "medicationStatements"}),
        evaluate=evaluate,
    ),
)
