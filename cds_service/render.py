"""Findings become CDS Hooks cards through the catalogue in ``cards/``.

The wording is data; this module fills it in, appends the evidence table, sets the indicator the site
chose, builds the suggested FHIR resources for this patient and order, and gives every card and
suggestion a uuid (from an injected factory, so tests can fix them).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from cds_service.catalogue import ActionEntry, CardEntry, Catalogue, SuggestionEntry
from cds_service.ids import uuid4
from cds_service.rules.base import Finding
from cds_service.schemas.cards import (
    INDICATOR_ORDER,
    Action,
    Card,
    Coding,
    Link,
    OverrideReason,
    Source,
    Suggestion,
)
from cds_service.site import SiteConfig
from cds_service.snapshot.model import Evidence, PalbociclibOrder
from cds_service.suggestions import order_with_dose
from cds_service.terminology import ValueSets, load_valuesets

_REQUESTS = frozenset({"MedicationRequest", "ServiceRequest"})
_REQUESTERS = ("Practitioner/", "PractitionerRole/")


@dataclass(frozen=True, slots=True)
class CallContext:
    patient_id: str
    user_id: str | None
    encounter_id: str | None
    today: date
    drafts: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    """Draft orders by ``MedicationRequest/<id>``, for suggestions that change them."""


def fill_resource(template: dict[str, Any], call: CallContext) -> dict[str, Any]:
    """A suggested resource for this call: the catalogue's clinical content plus subject, requester,
    encounter and date."""
    resource = copy.deepcopy(template)
    resource["subject"] = {"reference": f"Patient/{call.patient_id}"}
    if resource.get("resourceType") in _REQUESTS:
        resource.setdefault("status", "draft")
        resource.setdefault("intent", "order")
        resource["authoredOn"] = call.today.isoformat()
        if call.user_id and call.user_id.startswith(_REQUESTERS):
            resource["requester"] = {"reference": call.user_id}
        if call.encounter_id:
            resource["encounter"] = {"reference": f"Encounter/{call.encounter_id}"}
    return resource


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


class Renderer:
    def __init__(
        self,
        catalogue: Catalogue,
        site: SiteConfig,
        knowledge_version: str,
        new_uuid: Callable[[], str] = lambda: str(uuid4()),
        valuesets: ValueSets | None = None,
    ) -> None:
        self._valuesets = valuesets or load_valuesets()
        self.evidence: dict[str, tuple[Evidence, ...]] = {}
        """Evidence of every card rendered, by card uuid, for the audit log."""
        self._catalogue = catalogue
        self._site = site
        self._version = knowledge_version
        self._uuid = new_uuid

    def enabled(self, rule_id: str) -> bool:
        return rule_id not in self._site.disabled

    def _evidence(self, evidence: Iterable[Evidence]) -> str:
        rows = list(dict.fromkeys(evidence))
        if not rows:
            return ""
        common = self._catalogue.common
        head = "| " + " | ".join(common.evidence_columns) + " |"
        lines = [f"**{common.evidence_heading}**", "", head, "|---|---|---|"]
        for item in rows:
            when = item.date.date().isoformat() if item.date else "—"
            lines.append(f"| {_cell(item.description)} | {when} | `{_cell(item.reference)}` |")
        return "\n".join(lines)

    def _updated_draft(
        self, entry: ActionEntry, order: PalbociclibOrder, call: CallContext, params: Mapping[str, str]
    ) -> dict[str, Any] | None:
        draft = call.drafts.get(order.reference or "")
        if draft is None:
            return None
        dose: float | None = None
        if entry.dose_mg is not None:
            try:
                dose = float(entry.dose_mg.format(**params) if isinstance(entry.dose_mg, str) else entry.dose_mg)
            except ValueError:
                return None
        schedule = order.details.schedule
        return order_with_dose(
            draft,
            dose,
            entry.labelled_schedule,
            order.product,
            schedule.daily_dose_mg if schedule else None,
            self._valuesets,
        )

    def _action(
        self, entry: ActionEntry, order: PalbociclibOrder | None, call: CallContext, params: Mapping[str, str]
    ) -> Action | None:
        description = entry.description.format(**params)
        if entry.target == "finding":
            target = params.get("target_reference")
            return Action(type=entry.type, description=description, resourceId=target) if target else None
        if entry.target == "draft-order":
            if order is None or order.reference is None:
                return None
            if entry.type == "update":
                resource = self._updated_draft(entry, order, call, params)
                return Action(type="update", description=description, resource=resource) if resource else None
            return Action(type=entry.type, description=description, resourceId=order.reference)
        assert entry.resource is not None  # checked when the catalogue loads
        return Action(type=entry.type, description=description, resource=fill_resource(entry.resource, call))

    def _suggestion(
        self, entry: SuggestionEntry, order: PalbociclibOrder | None, call: CallContext, params: Mapping[str, str]
    ) -> Suggestion | None:
        actions = [self._action(a, order, call, params) for a in entry.actions]
        if any(a is None for a in actions):
            return None
        return Suggestion(
            label=entry.label.format(**params),
            uuid=self._uuid(),
            isRecommended=entry.recommended or None,
            actions=[a for a in actions if a is not None],
        )

    def card(self, finding: Finding, order: PalbociclibOrder | None, call: CallContext) -> Card:
        entry: CardEntry = self._catalogue[finding.rule_id]
        params = {name: finding.params.get(name, "") for name in entry.params}
        detail = entry.detail.format(**params).strip()
        evidence = self._evidence(finding.evidence)
        if evidence:
            detail = f"{detail}\n\n{evidence}"
        suggestions = [s for s in (self._suggestion(e, order, call, params) for e in entry.suggestions) if s]
        common = self._catalogue.common
        card_uuid = self._uuid()
        self.evidence[card_uuid] = finding.evidence
        return Card(
            uuid=card_uuid,
            summary=entry.summary.format(**params)[:139],
            detail=detail,
            indicator=self._site.indicators.get(finding.rule_id, finding.indicator or entry.indicator),
            source=Source(
                label=entry.source.label,
                url=entry.source.url,
                topic=Coding(system=common.topic_system, code=entry.rule_id, display=entry.title),
            ),
            suggestions=suggestions or None,
            selectionBehavior=entry.selection_behavior if suggestions else None,
            overrideReasons=[
                OverrideReason(system=common.override_reason_system, code=code, display=common.override_reasons[code])
                for code in entry.override_reasons
            ]
            or None,
            links=[Link(label=link.label, url=link.url, type="absolute") for link in entry.links] or None,
            extension={common.knowledge_extension: {"ruleId": entry.rule_id, "knowledgeVersion": self._version}},
        )

    def cards(self, findings: Iterable[Finding], order: PalbociclibOrder | None, call: CallContext) -> list[Card]:
        """Cards for the enabled findings, once per rule and text, critical first."""
        seen: set[tuple[str, str]] = set()
        out: list[Card] = []
        for finding in findings:
            if not self.enabled(finding.rule_id):
                continue
            rendered = self.card(finding, order, call)
            key = (finding.rule_id, rendered.summary + (rendered.detail or ""))
            if key not in seen:
                seen.add(key)
                out.append(rendered)
        return self.cards_sorted(out)

    @staticmethod
    def cards_sorted(cards: list[Card]) -> list[Card]:
        return sorted(cards, key=lambda c: INDICATOR_ORDER[c.indicator])
