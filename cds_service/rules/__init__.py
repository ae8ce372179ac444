"""The rules the pipeline runs, in order."""

from cds_service.rules import partner, receptors
from cds_service.rules.base import Finding, Rule

RULES: tuple[Rule, ...] = (receptors.RULE, partner.RULE)

__all__ = ["RULES", "Finding", "Rule"]
