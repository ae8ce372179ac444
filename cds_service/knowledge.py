"""Everything that decides what the service says, loaded and checked once at start-up.

Value sets, the card catalogue, the rules and the site configuration together have one knowledge
version: the package version plus a digest of all of them. Discovery, ``GET /version`` and every
response carry it, so any card can be traced to the exact rules and texts that produced it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any

from cds_service import __version__
from cds_service.catalogue import Catalogue, CatalogueError, load_catalogue
from cds_service.fhir.models import InvalidResource, validate_resource
from cds_service.render import CallContext, fill_resource
from cds_service.rules import RULES, Rule
from cds_service.rules.base import Threshold
from cds_service.services import ServiceDefinition, build_registry
from cds_service.site import SiteConfig, load_site_config
from cds_service.suggestions import EXAMPLE_DRAFT, order_with_dose
from cds_service.terminology import VALUESETS_DIR, ValueSets, load_valuesets

PIPELINE_CARDS = ("data-unavailable",)
"""Cards the pipeline itself raises, not a rule."""


@dataclass(frozen=True)
class Knowledge:
    valuesets: ValueSets
    catalogue: Catalogue
    site: SiteConfig
    rules: tuple[Rule, ...]
    registry: Mapping[str, ServiceDefinition]
    version: str

    @cached_property
    def rule_plan(self) -> tuple[tuple[Rule, Mapping[str, Threshold]], ...]:
        """The rules that can still raise a card at this site, each with its thresholds: what every call runs,
        worked out once (rules, site and thresholds do not change while the service runs)."""
        return tuple(
            (rule, self.site.thresholds_for(rule))
            for rule in self.rules
            if not all(card in self.site.disabled for card in rule.fires)
        )

    def describe(self) -> dict[str, Any]:
        return {
            "knowledgeVersion": self.version,
            "packageVersion": __version__,
            "cardsDigest": self.catalogue.digest,
            "valueSetsDigest": self.valuesets.digest,
            "siteConfigDigest": self.site.digest,
            "rules": [
                {
                    "name": r.name,
                    "cards": list(r.fires),
                    "needs": sorted(r.needs),
                    "thresholds": dict(self.site.thresholds_for(r)),
                }
                for r in self.rules
            ],
            "disabledCards": sorted(self.site.disabled),
        }


def _check_suggested_resources(catalogue: Catalogue, valuesets: ValueSets) -> None:
    """Every resource a suggestion can carry is valid FHIR R4: created ones as filled in for a call,
    updated draft orders as applied to an example draft."""
    call = CallContext(
        patient_id="example", user_id="Practitioner/example", encounter_id="example", today=date(2026, 1, 1)
    )
    for entry in catalogue.entries.values():
        for suggestion in entry.suggestions:
            for action in suggestion.actions:
                if action.resource is not None:
                    resource = fill_resource(action.resource, call)
                elif action.type == "update":
                    dose = action.dose_mg
                    example = float(entry.example_params.get(dose[1:-1], "0")) if isinstance(dose, str) else dose
                    resource = order_with_dose(EXAMPLE_DRAFT, example, action.labelled_schedule, None, 250.0, valuesets)
                else:
                    continue
                try:
                    validate_resource(resource)
                except InvalidResource as exc:
                    raise CatalogueError(f"{entry.rule_id}.yaml: suggestion {suggestion.label!r}: {exc}") from exc


def load_knowledge(cards_dir: Path, site_config: Path | None = None, valuesets_dir: Path = VALUESETS_DIR) -> Knowledge:
    valuesets = load_valuesets(valuesets_dir)
    required = {card for rule in RULES for card in rule.fires} | set(PIPELINE_CARDS)
    catalogue = load_catalogue(cards_dir, required)
    _check_suggested_resources(catalogue, valuesets)
    site = load_site_config(site_config, RULES, catalogue.entries)
    digest = hashlib.sha256(
        f"{__version__}\0{catalogue.digest}\0{valuesets.digest}\0{site.digest}".encode()
    ).hexdigest()
    return Knowledge(
        valuesets=valuesets,
        catalogue=catalogue,
        site=site,
        rules=RULES,
        registry=build_registry(valuesets),
        version=f"{__version__}+{digest[:12]}",
    )
