"""Authenticate the EHR calling the service (CDS Hooks 2.0 JWT), for discovery, hooks and feedback."""

from __future__ import annotations

import time

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from cds_service.api.deps import Runtime
from cds_service.audit.records import CallerIdentity
from cds_service.errors import NotAuthenticated
from cds_service.security.jwt_auth import Unauthorized


def audience(runtime: Runtime, request: Request) -> str:
    """The URL the client called: the configured public base URL plus the path, else the request's own."""
    base = runtime.settings.public_base_url
    if base:
        return base.rstrip("/") + request.url.path
    return str(request.url.replace(query=None, fragment=None))


async def authenticate(runtime: Runtime, request: Request) -> CallerIdentity | None:
    """The verified caller, ``None`` when authentication is switched off; raises ``NotAuthenticated``."""
    if not runtime.settings.auth_required:
        return None
    try:
        caller = await runtime.verifier.verify(request.headers.get("authorization"), audience(runtime, request))
        fresh = await run_in_threadpool(
            runtime.audit.remember_jti, caller.iss, caller.jti, caller.expires_at, int(time.time())
        )
        if not fresh:
            raise Unauthorized("jti already used (replay)", {"iss": caller.iss, "kid": caller.kid})
    except Unauthorized as exc:
        raise NotAuthenticated(exc.reason) from exc
    return CallerIdentity(iss=caller.iss, tenant=caller.tenant, jti=caller.jti, kid=caller.kid)


async def require_caller(runtime: Runtime, request: Request) -> CallerIdentity | None:
    """``authenticate`` for routes without their own invocation record: a refusal is recorded here."""
    try:
        return await authenticate(runtime, request)
    except NotAuthenticated as exc:
        await run_in_threadpool(runtime.audit.record_auth_failure, request.url.path, exc.reason)
        raise
