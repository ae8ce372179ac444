"""What the audit log keeps of a hook call: chosen fields, never the raw request body or a token.

Pure functions from the call's parts to the record's JSON content (and its index columns).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cds_service.prefetch.model import KeyOutcome
from cds_service.schemas.cards import Card
from cds_service.snapshot.fhirjson import as_dict, as_str, codings
from cds_service.snapshot.model import Evidence, PalbociclibOrder


@dataclass(frozen=True)
class CallerIdentity:
    """Who called, from the verified JWT: issuer, tenant, token id and key id (never the token)."""

    iss: str | None = None
    tenant: str | None = None
    jti: str | None = None
    kid: str | None = None


@dataclass
class InvocationRecord:
    """One hook call, filled in as the call proceeds; ``content()`` is what the log stores."""

    service_id: str
    received_at: datetime
    hook: str | None = None
    hook_instance: str | None = None
    user_id: str | None = None
    patient_id: str | None = None
    encounter_id: str | None = None
    caller: CallerIdentity | None = None
    draft_orders: list[dict[str, Any]] = field(default_factory=list)
    palbociclib_orders: list[str] = field(default_factory=list)
    prefetch: Mapping[str, KeyOutcome] = field(default_factory=dict)
    """How each prefetch key was obtained; never the resources, which the record does not keep."""
    knowledge_version: str | None = None
    cards: list[dict[str, Any]] = field(default_factory=list)
    skipped_checks: Mapping[str, str] = field(default_factory=dict)
    responded_at: datetime | None = None
    http_status: int | None = None
    error: dict[str, Any] | None = None

    @property
    def latency_ms(self) -> float | None:
        if self.responded_at is None:
            return None
        return (self.responded_at - self.received_at).total_seconds() * 1000

    def content(self) -> dict[str, Any]:
        return {
            "kind": "invocation",
            "serviceId": self.service_id,
            "hook": self.hook,
            "hookInstance": self.hook_instance,
            "receivedAt": self.received_at,
            "respondedAt": self.responded_at,
            "latencyMs": self.latency_ms,
            "httpStatus": self.http_status,
            "caller": None if self.caller is None else vars(self.caller),
            "userId": self.user_id,
            "patientId": self.patient_id,
            "encounterId": self.encounter_id,
            "draftOrders": self.draft_orders,
            "palbociclibOrders": self.palbociclib_orders,
            "prefetch": {
                key: {"state": outcome.state, "reason": outcome.reason or None}
                for key, outcome in self.prefetch.items()
            },
            "fhirQueries": [
                {
                    "key": q.key,
                    "url": q.url,
                    "status": q.status,
                    "outcome": q.outcome,
                    "elapsedMs": round(q.elapsed_ms, 1),
                    "entries": q.entries,
                }
                for outcome in self.prefetch.values()
                for q in outcome.queries
            ],
            "knowledgeVersion": self.knowledge_version,
            "cards": self.cards,
            "skippedChecks": dict(self.skipped_checks),
            "error": self.error,
        }


def draft_order_summary(resources: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each draft order's reference and codes, as evaluated."""
    out = []
    for resource in resources:
        concept = resource.get("medicationCodeableConcept") or as_dict(resource.get("code"))
        out.append(
            {
                "reference": f"{resource.get('resourceType')}/{as_str(resource.get('id')) or '?'}",
                "status": as_str(resource.get("status")),
                "codes": [{"system": c.system, "code": c.code} for c in codings(concept)],
                "medicationReference": as_str(as_dict(resource.get("medicationReference")).get("reference")),
            }
        )
    return out


def evidence_json(evidence: Sequence[Evidence]) -> list[dict[str, Any]]:
    return [{"reference": e.reference, "date": e.date, "description": e.description} for e in evidence]


def card_summary(card: Card, evidence: Sequence[Evidence]) -> dict[str, Any]:
    return {
        "uuid": card.uuid,
        "ruleId": card.rule_id,
        "indicator": card.indicator,
        "summary": card.summary,
        "detail": card.detail,
        "source": card.source.model_dump(mode="json", exclude_none=True),
        "suggestions": [{"uuid": s.uuid, "label": s.label} for s in card.suggestions or []],
        "overrideReasons": [r.model_dump(mode="json") for r in card.overrideReasons or []],
        "evidence": evidence_json(evidence),
    }


def order_references(orders: Sequence[PalbociclibOrder]) -> list[str]:
    return [order.reference or "MedicationRequest/?" for order in orders]
