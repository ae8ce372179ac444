"""ASGI middleware: a request id for every call (``X-Request-ID``, echoed or made), one structured log
line per request, with no query string (auditor filters name patients) and no body, and the latency
metrics of hook and feedback calls."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Collection
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cds_service import ids, metrics

log = logging.getLogger("cds_service.requests")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_SERVICE_CALL = re.compile(r"^/cds-services/([^/]+)(/feedback)?$")


def _known_services(scope: Scope) -> Collection[str]:
    """The service ids of the running app (its registry), so any other id is counted as "unknown"."""
    runtime = getattr(getattr(scope.get("app"), "state", None), "runtime", None)
    registry: Collection[str] = getattr(getattr(runtime, "knowledge", None), "registry", ())
    return registry


def _observe(scope: Scope, status: int, seconds: float) -> None:
    call = _SERVICE_CALL.match(scope.get("path", "")) if scope.get("method") == "POST" else None
    if call is None:
        return
    service, feedback = call.group(1), call.group(2)
    observe = metrics.observe_feedback if feedback else metrics.observe_hook
    observe(service, status, seconds, _known_services(scope))


class RequestLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode(errors="replace") for k, v in scope.get("headers", [])}
        given = headers.get("x-request-id", "")
        request_id = given if _SAFE_ID.match(given) else ids.uuid4().hex
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["log"] = {}
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            _observe(scope, status, elapsed)
            fields = {
                "request_id": request_id,
                "method": scope.get("method"),
                "path": scope.get("path"),
                "status": status,
                "latency_ms": round(elapsed * 1000, 2),
                **state.get("log", {}),
            }
            log.info("request", extra=fields)
