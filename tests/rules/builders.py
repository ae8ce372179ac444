"""Snapshot pieces the rule tests build by hand, with the fields the pipeline would have filled."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from cds_service.snapshot.model import Evidence, LabResult, MedicationSource, MedicationUse


def medication_use(
    ingredient: str,
    groups: Iterable[str],
    source: MedicationSource,
    status: str | None,
    *,
    started: datetime | None,
    ended: datetime | None = None,
    rid: str | None = None,
    kind: str | None = None,
) -> MedicationUse:
    """A medicine matched by its ingredient; its evidence names a MedicationStatement or MedicationRequest
    according to ``source`` unless ``kind`` says which."""
    kind = kind or ("MedicationStatement" if source == "statement" else "MedicationRequest")
    return MedicationUse(
        ingredients=frozenset({ingredient}),
        groups=frozenset(groups),
        source=source,
        status=status,
        product=None,
        matched_by="ingredient",
        text=ingredient,
        evidence=Evidence(
            kind, rid or f"{ingredient}-{source}-{status}", started, f"{ingredient} ({source}, {status})"
        ),
        started=started,
        ended=ended,
    )


def coded_result(
    concept: str, results: Iterable[str], when: datetime | None, rid: str, site: str | None = None, original: str = ""
) -> LabResult:
    """An Observation with coded results only (receptor status, a pregnancy test), no quantity; ``original`` is
    the value as received, by default the results themselves."""
    results = tuple(results)
    original = original or ", ".join(results)
    return LabResult(
        concept=concept,
        effective=when,
        value=None,
        unit=None,
        interpretable=True,
        original=original,
        result_concepts=frozenset(results),
        evidence=Evidence("Observation", rid, when, f"{concept}: {original}"),
        site=site,
    )
