"""The card catalogue: ``cards/<rule_id>.yaml``, one entry per rule, loaded and checked at start-up.

An entry holds the card's indicator, summary and detail templates (GitHub-flavoured Markdown with
``{name}`` placeholders), its source, suggestions and override reasons. ``cards/_catalogue.yaml`` holds
what all cards share. Anything wrong (unknown placeholder, summary too long, a suggested resource that is
not valid FHIR R4, a rule without a card) raises ``CatalogueError`` and the service does not start.
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cds_service import yamlload
from cds_service.schemas.cards import Indicator


class CatalogueError(ValueError):
    """A card entry is malformed; the message names the file and the problem."""


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceEntry(_Entry):
    label: str = Field(min_length=1)
    url: str | None = None


class ActionEntry(_Entry):
    type: Literal["create", "update", "delete"]
    description: str = Field(min_length=1)
    """May use the card's ``{params}``."""
    target: Literal["draft-order", "finding"] | None = None
    """``draft-order``: the palbociclib order under review; ``finding``: the resource the finding names in
    its ``target_reference`` param (e.g. the aromatase-inhibitor order a switch would stop)."""
    resource: dict[str, Any] | None = None
    """For ``create``: the clinical content of the new resource; subject, requester, encounter and dates
    are filled in for the call."""
    dose_mg: float | str | None = None
    """For ``update`` of the draft order: the new dose per day, a number or a ``{param}`` of the finding."""
    labelled_schedule: bool = False
    """For ``update`` of the draft order: set the labelled 21-days-on / 7-days-off schedule."""

    @model_validator(mode="after")
    def _complete(self) -> ActionEntry:
        if self.type == "create" and self.resource is None:
            raise ValueError("a create action needs a resource")
        if self.type in ("delete", "update") and self.target is None:
            raise ValueError(f"a {self.type} action needs a target")
        if self.type == "update" and (
            self.target != "draft-order" or (self.dose_mg is None and not self.labelled_schedule)
        ):
            raise ValueError("an update changes the draft order's dose_mg or sets its labelled_schedule")
        return self


class SuggestionEntry(_Entry):
    label: str = Field(min_length=1)
    recommended: bool = False
    actions: list[ActionEntry] = Field(min_length=1)


class LinkEntry(_Entry):
    label: str = Field(min_length=1)
    url: str = Field(min_length=1)


class CardEntry(_Entry):
    rule_id: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    title: str = Field(min_length=1)
    """The check, as the data-unavailable card names it."""
    indicator: Indicator
    summary: str = Field(min_length=1)
    detail: str = Field(min_length=1)
    source: SourceEntry
    params: list[str] = Field(default_factory=list)
    example_params: dict[str, str] = Field(default_factory=dict)
    selection_behavior: Literal["at-most-one", "any"] | None = None
    suggestions: list[SuggestionEntry] = Field(default_factory=list)
    override_reasons: list[str] = Field(default_factory=list)
    links: list[LinkEntry] = Field(default_factory=list)


class CommonEntry(_Entry):
    topic_system: str = Field(min_length=1)
    override_reason_system: str = Field(min_length=1)
    override_reasons: dict[str, str]
    evidence_heading: str
    evidence_columns: tuple[str, str, str]
    knowledge_extension: str = Field(min_length=1)
    prefetch_key_labels: dict[str, str] = Field(default_factory=dict)


def placeholders(template: str) -> set[str]:
    names = set()
    for _, field, _, _ in string.Formatter().parse(template):
        if field is None:
            continue
        if not field.isidentifier():
            raise CatalogueError(f"placeholder {{{field}}} must be a plain name")
        names.add(field)
    return names


class Catalogue:
    def __init__(self, common: CommonEntry, entries: Mapping[str, CardEntry], digest: str) -> None:
        self.common = common
        self.entries = dict(entries)
        self.digest = digest

    def __getitem__(self, rule_id: str) -> CardEntry:
        return self.entries[rule_id]

    def __contains__(self, rule_id: object) -> bool:
        return rule_id in self.entries


def _read(path: Path) -> Any:
    try:
        return yamlload.safe_load(path.read_bytes())
    except yaml.YAMLError as exc:
        raise CatalogueError(f"{path.name}: not valid YAML: {exc}") from exc


def _templates(entry: CardEntry) -> list[str]:
    """Every text of an entry that may hold ``{params}``."""
    texts = [entry.summary, entry.detail]
    for suggestion in entry.suggestions:
        texts.append(suggestion.label)
        for action in suggestion.actions:
            texts.append(action.description)
            if isinstance(action.dose_mg, str):
                texts.append(action.dose_mg)
    return texts


def _check_entry(path: Path, entry: CardEntry, common: CommonEntry) -> None:
    if entry.rule_id != path.stem:
        raise CatalogueError(f"{path.name}: rule_id {entry.rule_id!r} must match the file name")
    texts = _templates(entry)
    try:
        used: set[str] = set().union(*(placeholders(text) for text in texts))
    except CatalogueError as exc:
        raise CatalogueError(f"{path.name}: {exc}") from exc
    if any(a.target == "finding" for sg in entry.suggestions for a in sg.actions):
        used.add("target_reference")
    undeclared = used - set(entry.params)
    if undeclared:
        raise CatalogueError(f"{path.name}: placeholders not in params: {sorted(undeclared)}")
    missing_examples = set(entry.params) - set(entry.example_params)
    if missing_examples:
        raise CatalogueError(f"{path.name}: example_params lacks {sorted(missing_examples)}")
    summary = entry.summary.format(**entry.example_params)
    if len(summary) >= 140:
        raise CatalogueError(
            f"{path.name}: summary is {len(summary)} characters with the example "
            "params; the spec requires fewer than 140"
        )
    unknown = [r for r in entry.override_reasons if r not in common.override_reasons]
    if unknown:
        raise CatalogueError(f"{path.name}: override reasons not in _catalogue.yaml: {unknown}")
    if entry.suggestions and entry.selection_behavior is None:
        raise CatalogueError(f"{path.name}: suggestions need a selection_behavior")
    if entry.selection_behavior == "at-most-one" and sum(s.recommended for s in entry.suggestions) > 1:
        raise CatalogueError(f"{path.name}: at-most-one cards may recommend one suggestion at most")


def load_catalogue(directory: Path, required: Iterable[str] = ()) -> Catalogue:
    if not directory.is_dir():
        raise CatalogueError(f"card catalogue folder {directory} does not exist")
    digest = hashlib.sha256()
    common_path = directory / "_catalogue.yaml"
    if not common_path.is_file():
        raise CatalogueError(f"{common_path} is missing")
    try:
        common = CommonEntry.model_validate(_read(common_path))
    except ValidationError as exc:
        raise CatalogueError(f"_catalogue.yaml: {exc}") from exc
    entries: dict[str, CardEntry] = {}
    for path in sorted(directory.glob("*.yaml")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
        if path.name.startswith("_"):
            continue
        try:
            entry = CardEntry.model_validate(_read(path))
        except ValidationError as exc:
            raise CatalogueError(f"{path.name}: {exc}") from exc
        _check_entry(path, entry, common)
        entries[entry.rule_id] = entry
    missing = sorted(set(required) - set(entries))
    if missing:
        raise CatalogueError(f"no card in {directory} for rule ids: {', '.join(missing)}")
    return Catalogue(common, entries, digest.hexdigest())
