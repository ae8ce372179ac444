"""The hook call's own way through the app. ``POST /cds-services/{id}`` is the call an EHR makes on every order,
so it goes to its endpoint (``hooks.call_service``) through the same user middlewares (CORS, the request log) and
the same exception handlers, but not through FastAPI's routing over every route, its per-call dependency
resolution and the layers between them (``docs/performance.md``, "The hook call's own path"). Every other
request, and this one whenever something the short way does not reproduce is switched on (a root path, FastAPI's
OpenTelemetry hooks), goes through FastAPI as before."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from cds_service.api import hooks

HOOK_PATH = re.compile(r"^/cds-services/([^/]+)$")
"""The path of ``hooks.call_service``'s route (``/cds-services/{service_id}``); its feedback path has two parts."""


class HookEndpoint:
    """ASGI: the hook call, answered as the FastAPI route answers it, errors by the app's own handlers."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await hooks.call_service(scope["path_params"]["service_id"], request, self.app.state.runtime)
        except Exception as exc:
            handler = _handler(self.app, exc)
            if handler is None:
                raise
            response = await handler(request, exc)
            if _is_last_resort(self.app, handler):
                # As Starlette's ServerErrorMiddleware: the 500 is answered, and the error still reaches the server.
                await response(scope, receive, send)
                raise
        await response(scope, receive, send)


def _handler(app: FastAPI, exc: Exception) -> Any:
    """The app's handler for ``exc``: the nearest class in its MRO, as Starlette's ExceptionMiddleware looks it up;
    the handler of ``Exception`` (or 500) last."""
    handlers = app.exception_handlers
    for kind in type(exc).__mro__:
        if kind is not Exception and kind in handlers:
            return handlers[kind]
    return handlers.get(Exception) or handlers.get(500)


def _is_last_resort(app: FastAPI, handler: Any) -> bool:
    return handler is app.exception_handlers.get(Exception) or handler is app.exception_handlers.get(500)


class CdsApp(FastAPI):
    """FastAPI, with ``POST /cds-services/{id}`` taken the short way (see the module's docstring)."""

    hook_stack: ASGIApp | None = None

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        hook: ASGIApp = HookEndpoint(self)
        for cls, args, kwargs in reversed(self.user_middleware):
            hook = cls(hook, *args, **kwargs)
        self.hook_stack = hook
        return stack

    def _short_way_allowed(self, scope: Scope) -> bool:
        if self.root_path or scope.get("root_path"):
            return False  # Starlette's routing strips a root path; leave that to it
        telemetry = getattr(self, "_native_telemetry", None)
        return not (telemetry is not None and telemetry.enabled())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stack = self.hook_stack  # built with FastAPI's own stack, at start-up
        if stack is not None and scope["type"] == "http" and scope["method"] == "POST":
            match = HOOK_PATH.match(scope["path"])
            if match is not None and self._short_way_allowed(scope):
                scope["app"] = self
                scope["path_params"] = {"service_id": match.group(1)}
                await stack(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
