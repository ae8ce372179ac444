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
from cds_service.errors import InvalidRequest, PayloadTooLarge
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


def get_runtime(request: Request) -> Runtime:
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
        parsed = orjson.loads(bytes(body))
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc.args[0] if exc.args else exc}") from exc
    check_shape(parsed, settings)
    return parsed


def check_shape(value: Any, settings: Settings) -> None:
    """Refuse JSON nested too deep, arrays too long or strings too long, before any model sees it."""
    stack: list[tuple[Any, int, str]] = [(value, 1, "body")]
    while stack:
        node, depth, where = stack.pop()
        if depth > settings.max_json_depth:
            raise InvalidRequest(f"{where}: JSON nested deeper than {settings.max_json_depth} levels")
        if isinstance(node, dict):
            stack.extend((item, depth + 1, f"{where}.{key}") for key, item in node.items())
        elif isinstance(node, list):
            if len(node) > settings.max_list_items:
                raise InvalidRequest(f"{where}: {len(node)} items; at most {settings.max_list_items} are accepted")
            stack.extend((item, depth + 1, f"{where}[{index}]") for index, item in enumerate(node))
        elif isinstance(node, str) and len(node) > settings.max_string_length:
            raise InvalidRequest(f"{where}: a string of {len(node)} characters exceeds {settings.max_string_length}")
