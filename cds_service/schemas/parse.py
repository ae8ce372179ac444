"""Validate a service call body into a ``HookRequest`` and its hook's context, or say what is wrong."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from cds_service.errors import InvalidRequest
from cds_service.schemas.hooks import HookRequest, OrderSelectContext, OrderSignContext

CONTEXTS: dict[str, type[OrderSignContext]] = {
    "order-sign": OrderSignContext,
    "order-select": OrderSelectContext,
}


def _details(exc: ValidationError, prefix: str = "") -> list[str]:
    out = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()))
        out.append(f"{prefix}{where}: {error.get('msg')}" if where else f"{prefix.rstrip('.')}: {error.get('msg')}")
    return out


def parse_hook_request(body: Any, service_id: str, hook: str) -> tuple[HookRequest, OrderSignContext]:
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object (a CDS Hooks service request)")
    try:
        request = HookRequest.model_validate(body)
    except ValidationError as exc:
        raise InvalidRequest("not a valid CDS Hooks 2.0 service request", details=_details(exc)) from exc
    if request.hook != hook:
        raise InvalidRequest(f"hook {request.hook!r} does not match service {service_id!r}, which answers {hook!r}")
    try:
        context = CONTEXTS[hook].model_validate(request.context)
    except ValidationError as exc:
        raise InvalidRequest(f"context is not valid for the {hook} hook", details=_details(exc, "context.")) from exc
    return request, context
