"""Safety rules (brief §3, §6.3-6.4; behaviours 45-50): pregnancy, a pregnancy test before the first cycle,
breastfeeding, severe hepatic impairment, ILD/pneumonitis and dialysis.

The rules live in ``safety_pregnancy`` and ``safety_organs``; this module exports them together.
"""

from __future__ import annotations

from cds_service.rules import safety_organs, safety_pregnancy
from cds_service.rules.base import Rule

RULES: tuple[Rule, ...] = (*safety_pregnancy.RULES, *safety_organs.RULES)
