"""The floor with the durable write: the floor app (``bench/floor_app.py``) that also records each call in the
service's audit store and waits for the commit before it answers, as the service does. Nothing is evaluated: the
record holds what the body names (hook, instance, user, patient, encounter). Its p50 over the floor's is what the
durable write alone costs, the part of the service's ratio that no faster pipeline can remove.

    CDS_DATA_DIR=/tmp/floor-audit .venv/bin/python -m uvicorn bench.floor_audit_app:app --port 8091 --no-access-log
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response

from cds_service.api.hooks import identify
from cds_service.audit.records import InvocationRecord
from cds_service.audit.store import SqlAuditStore
from cds_service.settings import Settings

NO_CARDS = orjson.dumps({"cards": []})


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = Settings()
    app.state.store = SqlAuditStore(settings.audit_url, settings.audit_spool)
    try:
        yield
    finally:
        app.state.store.close()


app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, lifespan=lifespan)


def record_of(service_id: str, body: Any, now: datetime) -> InvocationRecord:
    record = InvocationRecord(service_id=service_id, received_at=now, responded_at=now, http_status=200)
    identify(record, body)  # what the service reads from any body, before it evaluates anything
    return record


@app.post("/cds-services/{service_id}")
async def hook(service_id: str, request: Request) -> Response:
    # The parsed body is not kept across the wait, as the service does not keep it: 8 or 32 bodies alive at once
    # made the event loop's CPU per call at c=8 1.31 ms instead of 0.68 (server core 0, wrk -t1 -c8 on core 1).
    record = record_of(service_id, orjson.loads(await request.body()), datetime.now(UTC))
    await asyncio.wrap_future(request.app.state.store.submit_invocation(record))  # committed before the answer
    return Response(content=NO_CARDS, media_type="application/json")
