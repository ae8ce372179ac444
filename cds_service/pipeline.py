"""One hook call, stage by stage: orders → prefetch → snapshot → rules → cards.

Each stage is its own module; this one only strings them together and decides what a call that lacks
data answers: 412 when nothing about the patient could be had, otherwise the cards the data supports
plus a ``data-unavailable`` card naming the checks that could not run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cds_service.errors import PrefetchUnavailable
from cds_service.fhir.client import FhirGateway
from cds_service.knowledge import Knowledge
from cds_service.orders import palbociclib_orders
from cds_service.prefetch.model import KeyOutcome, PatientData
from cds_service.prefetch.resolve import resolve
from cds_service.render import CallContext, Renderer
from cds_service.rules.base import Finding
from cds_service.schemas.cards import Card, CdsResponse
from cds_service.schemas.hooks import OrderSelectContext, OrderSignContext
from cds_service.services import ServiceDefinition
from cds_service.snapshot.build import build_snapshot
from cds_service.snapshot.fhirjson import bundle_resources
from cds_service.snapshot.medications import index_medications
from cds_service.snapshot.model import PalbociclibOrder, PatientSnapshot

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    """What a call produced, for the response and the audit log."""

    response: CdsResponse
    orders: list[PalbociclibOrder] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    """Checks that could not run -> why."""


def run_rules(
    knowledge: Knowledge, snapshot: PatientSnapshot, order: PalbociclibOrder, skipped: dict[str, str]
) -> list[Finding]:
    findings: list[Finding] = []
    available = snapshot.available
    for rule, thresholds in knowledge.rule_plan:
        if not rule.needs <= available:
            skipped[rule.name] = "missing data: " + ", ".join(sorted(rule.needs - available))
            continue
        try:
            findings.extend(rule.evaluate(snapshot, order, thresholds))
        except Exception as exc:  # a faulty rule must not take the other checks down with it
            # No traceback: its frames and message could carry patient values.
            log.error("rule failed: %s raised %s", rule.name, type(exc).__name__)
            skipped[rule.name] = "internal error"
    return findings


def _unavailable_finding(knowledge: Knowledge, data: PatientData, skipped: Mapping[str, str]) -> Finding:
    titles = {rule.name: knowledge.catalogue[rule.fires[0]].title for rule in knowledge.rules}
    labels = knowledge.catalogue.common.prefetch_key_labels
    keys = [
        f"{labels.get(k, k)} ({data.outcomes[k].reason or data.outcomes[k].state})" for k in sorted(data.unavailable)
    ]
    return Finding(
        "data-unavailable",
        {
            "checks": ", ".join(titles.get(name, name) for name in skipped),
            "data": "; ".join(keys) or "none",
            "count": str(len(skipped)),
        },
    )


def medication_index(context: OrderSignContext, prefetch: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    resources = list(context.draftOrders.resources())
    for value in (prefetch or {}).values():
        resources.extend(bundle_resources(value))
    return index_medications(resources)


async def evaluate(
    *,
    knowledge: Knowledge,
    service: ServiceDefinition,
    context: OrderSignContext,
    prefetch: Mapping[str, dict[str, Any] | None] | None,
    gateway: FhirGateway | None,
    no_server_reason: str,
    renderer: Renderer,
    now: datetime,
    budget_seconds: float,
    on_outcomes: Callable[[Mapping[str, KeyOutcome]], None] | None = None,
) -> Evaluation:
    """``on_outcomes`` hears how each prefetch key was obtained (also when the call then ends in a 412)."""
    started = time.monotonic()
    selections = context.selections if isinstance(context, OrderSelectContext) else None
    drafts = context.draftOrders.resources()
    index = medication_index(context, prefetch)
    found = palbociclib_orders(drafts, selections, knowledge.valuesets, index)
    if not found:
        return Evaluation(CdsResponse(cards=[]))

    data = await resolve(
        service.prefetch,
        prefetch,
        context.model_dump(),
        gateway,
        timeout=budget_seconds - (time.monotonic() - started),
        no_server_reason=no_server_reason,
    )
    if on_outcomes is not None:
        on_outcomes(data.outcomes)
    if not data.available:
        details = [f"{k}: {o.reason or o.state}" for k, o in data.outcomes.items()]
        raise PrefetchUnavailable(
            "no patient data could be obtained from the prefetch or the FHIR server", details=details
        )

    snapshot = build_snapshot(
        data,
        patient_id=context.patientId,
        draft_orders=drafts,
        evaluated_orders=[resource for resource, _ in found],
        as_of=now,
        vs=knowledge.valuesets,
        extra_medications=index,
    )
    call = CallContext(
        patient_id=context.patientId,
        user_id=context.userId,
        encounter_id=context.encounterId,
        today=now.date(),
        drafts={f"MedicationRequest/{r['id']}": r for r, _ in found if isinstance(r.get("id"), str)},
    )
    cards: list[Card] = []
    skipped: dict[str, str] = {}
    for _, order in found:
        findings = run_rules(knowledge, snapshot, order, skipped)
        cards.extend(renderer.cards(findings, order, call))
    if skipped:
        cards.extend(renderer.cards([_unavailable_finding(knowledge, data, skipped)], None, call))
    unique = {(c.rule_id, c.summary, c.detail): c for c in cards}
    ordered = renderer.cards_sorted(list(unique.values()))
    return Evaluation(CdsResponse(cards=ordered), [order for _, order in found], skipped)
