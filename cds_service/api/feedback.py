"""``POST /cds-services/{id}/feedback`` (CDS Hooks 2.0 §Feedback).

Accepts the 2.0 body ``{"feedback": [...]}`` and, as HAPI FHIR's clients send it, a bare feedback object.
Idempotent: the same item sent again is stored once; a new outcome for a card is kept as history.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from cds_service.api import openapi
from cds_service.api.caller import require_caller
from cds_service.api.deps import RuntimeDep, json_body
from cds_service.api.hooks import json_response, service_or_404
from cds_service.errors import InvalidRequest
from cds_service.schemas.feedback import FeedbackRequest

router = APIRouter()


def parse_feedback(body: Any) -> FeedbackRequest:
    if isinstance(body, dict) and "feedback" not in body and "card" in body:
        body = {"feedback": [body]}
    if not isinstance(body, dict):
        raise InvalidRequest("the feedback body must be a JSON object")
    try:
        return FeedbackRequest.model_validate(body)
    except ValidationError as exc:
        details = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()]
        raise InvalidRequest("not a valid CDS Hooks feedback request", details=details) from exc


@router.post(
    "/cds-services/{service_id}/feedback",
    summary="Feedback on cards (accepted / overridden)",
    openapi_extra=openapi.body("FeedbackRequest"),
    responses=openapi.errors(400, 401, 404, 413),
)
async def feedback(service_id: str, request: Request, runtime: RuntimeDep) -> Response:
    await require_caller(runtime, request)
    service = service_or_404(runtime, service_id)
    parsed = parse_feedback(await json_body(request))
    result = await run_in_threadpool(runtime.audit.record_feedback, service.id, parsed.feedback)
    return json_response(
        {"stored": result.stored, "duplicates": result.duplicates, "unknownCards": result.unknown_cards},
        runtime.knowledge.version,
    )
