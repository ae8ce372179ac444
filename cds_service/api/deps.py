"""Shared objects of the running service, reached from routes through ``request.app.state``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import httpx
import orjson
from fastapi import Depends, Request

from cds_service import jsonload
from cds_service.api.admission import Admission
from cds_service.audit.auditors import Auditors
from cds_service.audit.store import SqlAuditStore
from cds_service.errors import InvalidRequest, PayloadTooLarge
from cds_service.json_limits import check_shape
from cds_service.knowledge import Knowledge
from cds_service.security.jwt_auth import JwtVerifier
from cds_service.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    knowledge: Knowledge
    http: httpx.AsyncClient
    audit: SqlAuditStore
    clock: Callable[[], datetime]
    new_uuid: Callable[[], str]
    auditors: Auditors
    verifier: JwtVerifier
    admission: Admission
    fhir_http: tuple[httpx.AsyncClient, ...]
    """Clients for the EHRs' FHIR servers (``http`` serves the service's own calls, e.g. JWK Sets)."""


async def get_runtime(request: Request) -> Runtime:
    # async: FastAPI runs a plain-function dependency in its thread pool, a thread hop on every call.
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def json_body(request: Request) -> Any:
    """The request body as JSON within the configured limits, or a 4xx saying why it is not."""
    settings: Settings = request.app.state.runtime.settings
    limit = settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
    if not body.strip():
        raise InvalidRequest("request body is empty; a JSON object is required")
    try:
        parsed = jsonload.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc.args[0] if exc.args else exc}") from exc
    check_shape(parsed, settings)
    return parsed
