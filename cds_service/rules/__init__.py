"""The rules the pipeline runs, in order: each module exports ``RULES``."""

from cds_service.rules import (
    blood_counts,
    dose,
    duplicates,
    indication,
    interactions,
    partner,
    partner_menopause,
    receptors,
    safety,
)
from cds_service.rules.base import Finding, Rule

RULES: tuple[Rule, ...] = (
    *indication.RULES,
    *receptors.RULES,
    *partner.RULES,
    *partner_menopause.RULES,
    *duplicates.RULES,
    *dose.RULES,
    *safety.RULES,
    *blood_counts.RULES,
    *interactions.RULES,
)

__all__ = ["RULES", "Finding", "Rule"]
