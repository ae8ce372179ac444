"""Scenario records for the benchmarks, with their dates moved to today.

The fixtures are written for the manifests' reference time; sent as they are weeks later, the realistic patient's
blood count is old enough for a ``cbc-stale`` card, and the benchmark would time a different call from the one it
describes (a clean patient, no cards). Dates move by whole days, as ``fixtures load --shift-to-today`` moves them.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

from cds_service.cli.fixtures import days_to_today, scenarios, shift_dates
from cds_service.scenarios import load_json

FIXTURES = Path(__file__).resolve().parent.parent / "fhir_fixtures"


def reference_time() -> datetime:
    """The manifests' reference time: the moment the fixtures are dated for."""
    return scenarios(FIXTURES)[0]


def record_as_of_today(path: Path, today: date | None = None) -> dict[str, Any]:
    """The scenario Bundle at ``path``, every date moved by (today - the manifests' reference date)."""
    record: dict[str, Any] = shift_dates(load_json(path), days_to_today(reference_time(), today))
    return record
