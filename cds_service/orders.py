"""Find the palbociclib orders among a hook's draft orders (for order-select, among the selected ones)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from cds_service.snapshot.fhirjson import as_str, evidence, first_datetime, reference_id
from cds_service.snapshot.medications import MedicationIndex, resolve
from cds_service.snapshot.model import PalbociclibOrder
from cds_service.snapshot.order_details import describe_order
from cds_service.terminology import ValueSets

PALBOCICLIB = "palbociclib"


def _selected(resource: dict[str, Any], selections: set[str]) -> bool:
    rid = as_str(resource.get("id"))
    return rid is not None and (f"{resource.get('resourceType')}/{rid}" in selections or rid in selections)


def _prior_prescriptions(resource: dict[str, Any]) -> tuple[str, ...]:
    kind, rid = reference_id(resource.get("priorPrescription"))
    return (f"{kind or 'MedicationRequest'}/{rid}",) if rid and not rid.startswith("#") else ()


def palbociclib_orders(
    draft_orders: Iterable[dict[str, Any]],
    selections: Sequence[str] | None,
    vs: ValueSets,
    index: MedicationIndex,
) -> list[tuple[dict[str, Any], PalbociclibOrder]]:
    """The draft MedicationRequests that order palbociclib, with what was recognised of each."""
    chosen = set(selections) if selections is not None else None
    found = []
    for resource in draft_orders:
        if resource.get("resourceType") != "MedicationRequest" or resource.get("doNotPerform") is True:
            continue
        if chosen is not None and not _selected(resource, chosen):
            continue
        resolved = resolve(resource, vs, index)
        if resolved is None or PALBOCICLIB not in resolved.ingredients:
            continue
        when = first_datetime(resource, "authoredOn")
        order = PalbociclibOrder(
            resource_id=as_str(resource.get("id")),
            status=as_str(resource.get("status")),
            product=resolved.product,
            matched_by=resolved.matched_by,
            text=resolved.text,
            evidence=evidence(resource, when, f"{resolved.text or 'palbociclib'} (draft order)"),
            details=describe_order(resource, resolved.product, resolved.text),
            replaces=_prior_prescriptions(resource),
        )
        found.append((resource, order))
    return found
