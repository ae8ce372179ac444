"""CDS Hooks 2.0 service request (§Calling a CDS Service) and the order-sign / order-select contexts
(cds-hooks-library v1.0.1)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

NonEmpty = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class _Wire(BaseModel):
    # Unknown fields are allowed: 3.0 adds fields and vendors add extensions.
    model_config = ConfigDict(extra="allow", frozen=True)


class FhirAuthorization(_Wire):
    access_token: NonEmpty
    token_type: Literal["Bearer"]
    expires_in: int
    scope: NonEmpty
    subject: NonEmpty
    patient: NonEmpty | None = None

    def __repr__(self) -> str:  # the token must never reach a log line
        return "FhirAuthorization(access_token=***)"

    __str__ = __repr__


class DraftOrders(_Wire):
    resourceType: Literal["Bundle"]
    entry: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("entry")
    @classmethod
    def _entries_hold_resources(cls, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for index, entry in enumerate(entries):
            resource = entry.get("resource")
            if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
                raise ValueError(f"entry[{index}] has no resource with a resourceType")
        return entries

    def resources(self) -> list[dict[str, Any]]:
        return [entry["resource"] for entry in self.entry]


class OrderSignContext(_Wire):
    userId: Id
    patientId: Id
    encounterId: Id | None = None
    draftOrders: DraftOrders


class OrderSelectContext(OrderSignContext):
    selections: list[Id] = Field(min_length=1)

    @model_validator(mode="after")
    def _selections_name_draft_orders(self) -> OrderSelectContext:
        known = set()
        for resource in self.draftOrders.resources():
            rid = resource.get("id")
            if isinstance(rid, str):
                known.add(f"{resource['resourceType']}/{rid}")
                known.add(rid)
        missing = [s for s in self.selections if s not in known]
        if missing:
            raise ValueError(f"selections not found in draftOrders: {', '.join(missing)}")
        return self


class HookRequest(_Wire):
    hook: NonEmpty
    hookInstance: Id
    fhirServer: NonEmpty | None = None
    fhirAuthorization: FhirAuthorization | None = None
    context: dict[str, Any]
    prefetch: dict[str, dict[str, Any] | None] | None = None
    extension: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _authorization_needs_server(self) -> HookRequest:
        if self.fhirAuthorization is not None and self.fhirServer is None:
            raise ValueError("fhirAuthorization is present but fhirServer is missing")
        return self
