"""CDS Hooks 2.0 response (§CDS Service Response): cards, suggestions, actions, links.

The spec's rules are validators here, so a card that breaks them cannot be built: summary under 140
characters, ``selectionBehavior`` whenever there are suggestions, a resource for create and update actions,
a ``display`` on every override reason.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

Indicator = Literal["info", "warning", "critical"]
INDICATOR_ORDER: dict[str, int] = {"critical": 0, "warning": 1, "info": 2}

NonEmpty = Annotated[str, StringConstraints(min_length=1)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Coding(_Wire):
    system: NonEmpty
    code: NonEmpty
    display: NonEmpty | None = None


class OverrideReason(Coding):
    display: NonEmpty


class Source(_Wire):
    label: NonEmpty
    url: NonEmpty | None = None
    icon: NonEmpty | None = None
    topic: Coding | None = None


class Action(_Wire):
    type: Literal["create", "update", "delete"]
    description: NonEmpty
    resource: dict[str, Any] | None = None
    resourceId: NonEmpty | None = None

    @model_validator(mode="after")
    def _resource_for_writes(self) -> Action:
        if self.type in ("create", "update") and self.resource is None:
            raise ValueError(f"a {self.type} action needs a resource")
        if self.type == "delete" and self.resourceId is None:
            raise ValueError("a delete action needs a resourceId")
        return self


class Suggestion(_Wire):
    label: NonEmpty
    uuid: NonEmpty | None = None
    isRecommended: bool | None = None
    actions: list[Action] | None = Field(default=None, min_length=1)


class Link(_Wire):
    label: NonEmpty
    url: NonEmpty
    type: Literal["absolute", "smart"]
    appContext: NonEmpty | None = None
    autolaunchable: bool | None = None


class Card(_Wire):
    uuid: NonEmpty | None = None
    summary: Annotated[str, StringConstraints(min_length=1, max_length=139)]
    detail: NonEmpty | None = None
    indicator: Indicator
    source: Source
    suggestions: list[Suggestion] | None = Field(default=None, min_length=1)
    selectionBehavior: Literal["at-most-one", "any"] | None = None
    overrideReasons: list[OverrideReason] | None = Field(default=None, min_length=1)
    links: list[Link] | None = Field(default=None, min_length=1)
    extension: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _selection_behavior(self) -> Card:
        if self.suggestions and self.selectionBehavior is None:
            raise ValueError("a card with suggestions needs a selectionBehavior")
        if self.selectionBehavior == "at-most-one" and self.suggestions:
            recommended = sum(1 for s in self.suggestions if s.isRecommended)
            if recommended > 1:
                raise ValueError("at-most-one cards may recommend one suggestion at most")
        return self

    @property
    def rule_id(self) -> str:
        return self.source.topic.code if self.source.topic else ""


class CdsResponse(_Wire):
    cards: list[Card]
    systemActions: list[Action] | None = Field(default=None, min_length=1)
    extension: dict[str, Any] | None = None

    def wire(self) -> dict[str, Any]:
        """The JSON body: optional fields without a value are omitted, as the spec requires."""
        return self.model_dump(mode="json", exclude_none=True)
