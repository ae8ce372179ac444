"""``GET /metrics``: Prometheus text exposition for the monitoring system.

Like ``/healthz`` it needs no CDS Hooks JWT: a scraper is not a CDS client, and the text carries no patient
data (see ``cds_service.metrics``). Left out of the OpenAPI description, which describes the CDS Hooks API.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from cds_service import metrics

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def scrape() -> Response:
    # Off the event loop: multiprocess mode reads every worker's files, and the spool depth reads the spool.
    body, content_type = await run_in_threadpool(metrics.render)
    return Response(body, media_type=content_type)
