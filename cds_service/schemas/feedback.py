"""CDS Hooks 2.0 feedback (§Feedback)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

NonEmpty = Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class ReasonCoding(_Wire):
    code: NonEmpty
    # The CDS Hooks Sandbox sends override reasons without a system.
    system: NonEmpty | None = None
    display: NonEmpty | None = None


class OverrideReasonFeedback(_Wire):
    reason: ReasonCoding | None = None
    userComment: NonEmpty | None = None

    @model_validator(mode="after")
    def _reason_or_comment(self) -> OverrideReasonFeedback:
        if self.reason is None and self.userComment is None:
            raise ValueError("overrideReason needs a reason or a userComment")
        return self


class AcceptedSuggestion(_Wire):
    id: NonEmpty


class FeedbackItem(_Wire):
    card: NonEmpty
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[AcceptedSuggestion] | None = Field(default=None, min_length=1)
    overrideReason: OverrideReasonFeedback | None = None
    outcomeTimestamp: datetime

    @model_validator(mode="after")
    def _accepted_names_suggestions(self) -> FeedbackItem:
        if self.outcome == "accepted" and not self.acceptedSuggestions:
            raise ValueError("an accepted outcome needs acceptedSuggestions")
        if self.outcomeTimestamp.tzinfo is None:
            raise ValueError("outcomeTimestamp needs a time zone (RFC 3339)")
        return self


class FeedbackRequest(_Wire):
    feedback: list[FeedbackItem] = Field(min_length=1, max_length=1000)
