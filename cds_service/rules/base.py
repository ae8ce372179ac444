"""What a rule is: a pure function from the snapshot and the order under review to findings.

Rules import nothing that does I/O (enforced by ruff's banned-api check). Each declares the prefetch keys
it reads, so a rule whose data could not be had is skipped and named on the ``data-unavailable`` card
instead of firing on an empty record, and the thresholds a site may tune, with their defaults.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from cds_service.snapshot.model import Evidence, PalbociclibOrder, PatientSnapshot

Indicator = Literal["info", "warning", "critical"]
Threshold = int | float | str | bool


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a rule found; ``rule_id`` names its card in ``cards/``."""

    rule_id: str
    params: Mapping[str, str] = field(default_factory=dict)
    evidence: tuple[Evidence, ...] = ()
    indicator: Indicator | None = None
    """Overrides the card's indicator when a rule grades severity itself."""


RuleFunction = Callable[[PatientSnapshot, PalbociclibOrder, Mapping[str, Threshold]], list[Finding]]


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    """The check, e.g. ``receptor-status``; its cards are ``fires``."""
    fires: tuple[str, ...]
    needs: frozenset[str]
    """Prefetch keys the rule reads."""
    evaluate: RuleFunction
    thresholds: Mapping[str, Threshold] = field(default_factory=dict)


T = TypeVar("T")


def latest(items: tuple[T, ...]) -> T | None:
    return items[0] if items else None
