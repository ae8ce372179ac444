"""Liveness and readiness for orchestrators (no authentication, no patient data)."""

from __future__ import annotations

import os

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from cds_service.api.deps import RuntimeDep
from cds_service.api.hooks import json_response

router = APIRouter()


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz(runtime: RuntimeDep) -> Response:
    return json_response({"status": "ok"}, runtime.knowledge.version)


@router.get("/readyz", summary="Readiness: the audit store or its spool can take records, and is not far behind")
async def readyz(runtime: RuntimeDep) -> Response:
    database = await run_in_threadpool(runtime.audit.reachable)
    spool_dir = runtime.audit.spool.path.parent
    spool = spool_dir.is_dir() and os.access(spool_dir, os.W_OK)
    behind = runtime.admission.audit_behind()
    ready = (database or spool) and not behind
    body = {
        "status": "ready" if ready else "not ready",
        "auditDatabase": database,
        "auditSpool": spool,
        "spoolDepth": runtime.audit.spool.depth(),
        "auditBacklog": runtime.audit.backlog(),
    }
    return json_response(body, runtime.knowledge.version, status_code=200 if ready else 503)
