"""The FastAPI application: ``create_app(settings)`` wires knowledge, the FHIR HTTP client, the audit
store, CORS and the routes. Knowledge is loaded here, so a bad card or site configuration stops start-up."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime

import httpx
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from cds_service import __version__, native
from cds_service.api import audit as audit_api
from cds_service.api import discovery, feedback, health, hooks, metrics, openapi
from cds_service.api.admission import Admission
from cds_service.api.deps import Runtime
from cds_service.api.errors import install_error_handlers
from cds_service.api.hook_route import CdsApp
from cds_service.api.request_log import RequestLog
from cds_service.audit.auditors import Auditors
from cds_service.audit.store import SqlAuditStore
from cds_service.fhir.transport import no_cookies, outbound_client
from cds_service.ids import uuid4
from cds_service.knowledge import Knowledge, load_knowledge
from cds_service.security.jwt_auth import JwtVerifier
from cds_service.security.keys import KeyCache
from cds_service.settings import Settings

log = logging.getLogger(__name__)


def fhir_client_count(knowledge: Knowledge) -> int:
    """httpx clients sharing the FHIR fallback queries (see ``FhirGateway``): one per query of the largest
    prefetch, so a call's burst puts one query in each client's pool. Measured on the realistic call's 19
    concurrent queries (100 ms server latency, in-process, CPU per call on one host): 4 clients 52 ms,
    19 clients 38 ms, 32 clients 37 ms."""
    return max((len(service.prefetch) for service in knowledge.registry.values()), default=1) or 1


YOUNG_GC_THRESHOLD = 20_000
"""Net new containers before a young collection, for a serving process (``freeze_heap``). A call's garbage is
freed by reference counting; the collector is only for cycles, which a call's JSON does not make."""


def _now() -> datetime:
    return datetime.now(UTC)


def create_app(
    settings: Settings | None = None,
    *,
    clock: Callable[[], datetime] = _now,
    new_uuid: Callable[[], str] = lambda: str(uuid4()),
    audit: SqlAuditStore | None = None,
    freeze_heap: bool = False,
) -> FastAPI:
    settings = settings or Settings()
    # httpx logs every request's URL at INFO, and FHIR query URLs name the patient: keep them out of logs.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    knowledge = load_knowledge(settings.cards_dir, settings.site_config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = audit or SqlAuditStore(settings.audit_url, settings.audit_spool)
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
        async with AsyncExitStack() as clients:
            tls = httpx.create_ssl_context()  # built once, for every client: each context loads the CA bundle
            http = await clients.enter_async_context(outbound_client(limits, tls))
            fhir_http = [
                await clients.enter_async_context(outbound_client(limits, tls, cookies=no_cookies()))
                for _ in range(fhir_client_count(knowledge))
            ]
            verifier = JwtVerifier(
                settings.trusted_clients,
                KeyCache(http),
                leeway=settings.jwt_leeway_seconds,
                max_age=settings.jwt_max_age_seconds,
            )
            app.state.runtime = Runtime(
                settings,
                knowledge,
                http,
                store,
                clock,
                new_uuid,
                Auditors(settings.auditors),
                verifier,
                Admission(
                    settings.max_concurrent_calls,
                    settings.retry_after_seconds,
                    store.backlog,
                    settings.max_audit_backlog,
                ),
                tuple(fhir_http),
            )
            if not settings.auth_required:
                log.warning("authentication is OFF: any caller may use the service (CDS_AUTH_REQUIRED=false)")
            elif not settings.trusted_clients:
                log.warning("no trusted CDS clients configured (CDS_TRUSTED_CLIENTS): every call will be refused")
            log.info("service ready", extra={"knowledge_version": knowledge.version, "native_modules": native.status})
            if freeze_heap:
                # What start-up built (knowledge, models, the database layer: ~150,000 objects) lives as long
                # as the process; frozen, the cyclic collector stops re-scanning it (~1.4 ms of each hook call).
                gc.collect()
                gc.freeze()
                # A call's parsed body alone is over a thousand containers, so at the default threshold (700)
                # nearly every call paid for a young collection that scanned the body and found no cycle.
                gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])
            try:
                yield
            finally:
                if audit is None:
                    store.close()

    app = CdsApp(title="Palbociclib order check: CDS Hooks 2.0 service", version=__version__, lifespan=lifespan)
    install_error_handlers(app)
    app.add_middleware(RequestLog)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type"],
            allow_credentials=False,
            max_age=600,
        )
    app.include_router(discovery.router)
    app.include_router(hooks.router)
    app.include_router(feedback.router)
    app.include_router(audit_api.router)
    app.include_router(health.router)
    app.include_router(metrics.router)
    openapi.install(app)
    return app


def serving_app() -> FastAPI:
    """The app uvicorn serves (``serve``): one per worker process, its start-up heap frozen."""
    return create_app(freeze_heap=True)
