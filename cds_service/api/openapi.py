"""The OpenAPI description of the CDS Hooks endpoints: request bodies and answers as the service really
parses and sends them (the bodies are read by hand for their limits and audit record, so FastAPI cannot
infer them)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from cds_service.schemas.cards import CdsResponse
from cds_service.schemas.feedback import FeedbackRequest
from cds_service.schemas.hooks import HookRequest


class OperationOutcomeIssue(BaseModel):
    severity: str
    code: str
    diagnostics: str


class OperationOutcome(BaseModel):
    """FHIR R4 OperationOutcome: every error answer."""

    resourceType: str
    issue: list[OperationOutcomeIssue]


class DiscoveryResponse(BaseModel):
    services: list[dict[str, Any]]


MODELS: tuple[type[BaseModel], ...] = (HookRequest, CdsResponse, FeedbackRequest, OperationOutcome, DiscoveryResponse)


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def body(name: str) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref(name)}}}}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    reasons = {
        400: "Not valid (OperationOutcome says what)",
        401: "No valid JWT from a trusted client",
        404: "No such service",
        412: "No patient data could be obtained",
        413: "Body too large",
    }
    return {
        code: {"description": reasons[code], "content": {"application/json": {"schema": ref("OperationOutcome")}}}
        for code in codes
    }


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in MODELS:
                generated = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(generated.pop("$defs", {}))
                components[model.__name__] = generated
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
