"""Rules of this topic (see the regimen-appropriateness issue); none yet."""

from __future__ import annotations

from cds_service.rules.base import Rule

RULES: tuple[Rule, ...] = ()
