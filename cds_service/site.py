"""Site tuning: switch a card off, change its indicator, or set a rule's thresholds.

The file (YAML, its path in ``CDS_SITE_CONFIG``) is checked at start-up against the rules and the card
catalogue; its digest is part of the knowledge version, so every response names the tuning behind it.

    cards:
      receptor-status-unknown: {indicator: info}
      partner-missing: {enabled: false}
    thresholds:
      cbc-recency: {stale_after_days: 21}
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from cds_service import yamlload
from cds_service.rules.base import Rule, Threshold
from cds_service.schemas.cards import Indicator


class SiteConfigError(ValueError):
    """The site configuration is malformed or names unknown rules; the service must not start."""


class _CardTuning(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True
    indicator: Indicator | None = None


class _SiteFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    cards: dict[str, _CardTuning] = {}
    thresholds: dict[str, dict[str, Threshold]] = {}


@dataclass(frozen=True)
class SiteConfig:
    disabled: frozenset[str] = frozenset()
    indicators: Mapping[str, Indicator] = field(default_factory=dict)
    thresholds: Mapping[str, Mapping[str, Threshold]] = field(default_factory=dict)
    digest: str = "none"

    def thresholds_for(self, rule: Rule) -> Mapping[str, Threshold]:
        return MappingProxyType({**rule.thresholds, **self.thresholds.get(rule.name, {})})


def load_site_config(path: Path | None, rules: Iterable[Rule], card_ids: Iterable[str]) -> SiteConfig:
    if path is None:
        return SiteConfig()
    try:
        raw = path.read_bytes()
        document: Any = yamlload.safe_load(raw) or {}
        parsed = _SiteFile.model_validate(document)
    except OSError as exc:
        raise SiteConfigError(f"site configuration {path}: {exc.strerror}") from exc
    except (yaml.YAMLError, ValidationError) as exc:
        raise SiteConfigError(f"site configuration {path}: {exc}") from exc

    known_cards = set(card_ids)
    unknown = sorted(set(parsed.cards) - known_cards)
    if unknown:
        raise SiteConfigError(f"site configuration {path}: unknown card rule ids {unknown}")
    by_name = {rule.name: rule for rule in rules}
    for name, values in parsed.thresholds.items():
        rule = by_name.get(name)
        if rule is None:
            raise SiteConfigError(f"site configuration {path}: unknown rule {name!r} in thresholds")
        for key, value in values.items():
            if key not in rule.thresholds:
                raise SiteConfigError(f"site configuration {path}: rule {name!r} has no threshold {key!r}")
            default = rule.thresholds[key]
            if type(value) is not type(default) and not (isinstance(default, float) and type(value) is int):
                raise SiteConfigError(f"site configuration {path}: {name}.{key} must be a {type(default).__name__}")
    return SiteConfig(
        disabled=frozenset(k for k, v in parsed.cards.items() if not v.enabled),
        indicators={k: v.indicator for k, v in parsed.cards.items() if v.indicator is not None},
        thresholds={k: dict(v) for k, v in parsed.thresholds.items()},
        digest=hashlib.sha256(raw).hexdigest(),
    )
