"""Shared objects of the running service, reached from routes through ``request.app.state``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import httpx
import orjson
from fastapi import Depends, Request

from cds_service.audit.auditors import Auditors
from cds_service.audit.store import SqlAuditStore
from cds_service.errors import InvalidRequest
from cds_service.knowledge import Knowledge
from cds_service.security.jwt_auth import JwtVerifier
from cds_service.settings import Settings

MAX_BODY_BYTES = 10 * 1024 * 1024


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


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def json_body(request: Request) -> Any:
    """The request body as JSON, or a 400 saying why it is not."""
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise InvalidRequest(f"request body exceeds {MAX_BODY_BYTES} bytes")
    if not body.strip():
        raise InvalidRequest("request body is empty; a JSON object is required")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc.args[0] if exc.args else exc}") from exc
