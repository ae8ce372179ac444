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


def check_shape(value: Any, settings: Settings) -> None:
    """Refuse JSON nested too deep, arrays too long or strings too long, before any model sees it."""
    if _within_limits(value, settings.max_json_depth, settings.max_list_items, settings.max_string_length):
        return
    # The walk above keeps no paths, for speed; only a refused body pays for finding where it went wrong.
    _explain(value, settings)


def _within_limits(value: Any, max_depth: int, max_items: int, max_string: int) -> bool:
    """The same limits as ``_explain``: a value at depth ``d`` is nested ``d`` levels deep (the body is 1)."""
    if type(value) is not dict and type(value) is not list:
        return max_depth >= 1 and (type(value) is not str or len(value) <= max_string)
    stack: list[tuple[Any, int]] = [(value, 1)]
    push = stack.append
    while stack:
        node, depth = stack.pop()
        if depth > max_depth or (node and depth + 1 > max_depth):
            return False
        if type(node) is dict:
            children = node.values()
        elif len(node) > max_items:
            return False
        else:
            children = node
        for item in children:
            kind = type(item)
            if kind is str:
                if len(item) > max_string:
                    return False
            elif kind is dict or kind is list:
                push((item, depth + 1))
    return True


def _explain(value: Any, settings: Settings) -> None:
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
    raise InvalidRequest("request body exceeds the input limits")
