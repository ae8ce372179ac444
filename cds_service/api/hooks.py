"""``POST /cds-services/{id}`` (CDS Hooks 2.0 §Calling a CDS Service): parse, evaluate, record, answer.

Every call is recorded in the audit log before its response is sent: the cards, and also 4xx answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from cds_service import metrics, pipeline
from cds_service.api import openapi
from cds_service.api.caller import authenticate
from cds_service.api.deps import Runtime, RuntimeDep, json_body
from cds_service.audit.records import InvocationRecord, card_summary, draft_order_summary, order_references
from cds_service.errors import CdsError, NotAuthenticated, UnknownService
from cds_service.fhir.client import FhirGateway, refuse_base
from cds_service.render import Renderer
from cds_service.schemas.hooks import HookRequest
from cds_service.schemas.parse import parse_hook_request
from cds_service.services import ServiceDefinition

router = APIRouter()
log = logging.getLogger(__name__)


def service_or_404(runtime: Runtime, service_id: str) -> ServiceDefinition:
    service = runtime.knowledge.registry.get(service_id)
    if service is None:
        raise UnknownService(f"no CDS service {service_id!r}; GET /cds-services lists them")
    return service


def gateway_for(
    runtime: Runtime, request: HookRequest, request_id: str | None = None
) -> tuple[FhirGateway | None, str]:
    """The FHIR server of the call, or why there is none to read from."""
    if request.fhirServer is None:
        return None, "not in the prefetch and the call named no FHIR server"
    refusal = refuse_base(request.fhirServer, runtime.settings.fhir_allow_http)
    if refusal is not None:
        return None, refusal
    token = request.fhirAuthorization.access_token if request.fhirAuthorization else None
    gateway = FhirGateway(
        runtime.fhir_http,
        request.fhirServer,
        token,
        timeout=runtime.settings.fhir_query_timeout_seconds,
        max_pages=runtime.settings.fhir_max_pages,
        request_id=request_id,
    )
    return gateway, ""


def json_response(content: dict[str, Any], version: str, status_code: int = 200) -> Response:
    return Response(
        orjson.dumps(content),
        status_code=status_code,
        media_type="application/json",
        headers={"X-Knowledge-Version": version},
    )


def identify(record: InvocationRecord, body: Any) -> None:
    """What can be read from a body that may not be valid, for the record of a refused call."""
    if not isinstance(body, dict):
        return
    for field, attribute in (("hook", "hook"), ("hookInstance", "hook_instance")):
        if isinstance(body.get(field), str):
            setattr(record, attribute, body[field][:256])
    context = body.get("context")
    if isinstance(context, dict):
        for field, attribute in (("userId", "user_id"), ("patientId", "patient_id"), ("encounterId", "encounter_id")):
            if isinstance(context.get(field), str):
                setattr(record, attribute, context[field][:256])


async def _evaluate(
    runtime: Runtime, service: ServiceDefinition, body: Any, record: InvocationRecord, request_id: str | None = None
) -> Response:
    knowledge = runtime.knowledge
    identify(record, body)
    hook_request, context = parse_hook_request(body, service.id, service.hook)
    record.draft_orders = draft_order_summary(context.draftOrders.resources())
    gateway, no_server_reason = gateway_for(runtime, hook_request, request_id)
    renderer = Renderer(knowledge.catalogue, knowledge.site, knowledge.version, runtime.new_uuid, knowledge.valuesets)
    evaluation = await pipeline.evaluate(
        knowledge=knowledge,
        service=service,
        context=context,
        prefetch=hook_request.prefetch,
        gateway=gateway,
        no_server_reason=no_server_reason,
        renderer=renderer,
        now=runtime.clock(),
        budget_seconds=runtime.settings.deadline_seconds * 0.85,
        on_outcomes=lambda outcomes: setattr(record, "prefetch", outcomes),
    )
    record.palbociclib_orders = order_references(evaluation.orders)
    record.skipped_checks = evaluation.skipped
    record.cards = [
        card_summary(card, renderer.evidence.get(card.uuid or "", ())) for card in evaluation.response.cards
    ]
    metrics.count_cards(record.cards)
    return json_response(evaluation.response.wire(), knowledge.version)


@router.post(
    "/cds-services/{service_id}",
    summary="Call a CDS service (order-sign or order-select)",
    openapi_extra=openapi.body("HookRequest"),
    responses={
        200: {"content": {"application/json": {"schema": openapi.ref("CdsResponse")}}},
        **openapi.errors(400, 401, 404, 412, 413),
    },
)
async def call_service(service_id: str, request: Request, runtime: RuntimeDep) -> Response:
    record = InvocationRecord(
        service_id=service_id, received_at=runtime.clock(), knowledge_version=runtime.knowledge.version
    )
    try:
        with runtime.admission.slot():
            record.caller = await authenticate(runtime, request)
            service = service_or_404(runtime, service_id)
            response = await _evaluate(
                runtime, service, await json_body(request), record, getattr(request.state, "request_id", None)
            )
    except CdsError as exc:
        record.http_status = exc.status_code
        record.error = {"message": exc.message, "details": exc.details}
        if isinstance(exc, NotAuthenticated):
            record.error["reason"] = exc.reason
        request.state.log = {
            "hook_instance": record.hook_instance,
            "service_id": service_id,
            "error": type(exc).__name__,
        }
        record.responded_at = runtime.clock()
        await _record(runtime, record)
        raise
    record.http_status = response.status_code
    record.responded_at = runtime.clock()
    await _record(runtime, record)
    request.state.log = {
        "hook_instance": record.hook_instance,
        "service_id": service_id,
        "rule_ids": [c["ruleId"] for c in record.cards],
    }
    return response


async def _record(runtime: Runtime, record: InvocationRecord) -> None:
    """Committed (or spooled) before the answer goes out, unless the store stalls for longer than
    ``CDS_AUDIT_WAIT_SECONDS``: then the answer goes out and the record, complete and queued, is committed
    when the store catches up. A disk that stalls for seconds must not hold the clinician's order."""
    started = time.perf_counter()
    written = asyncio.wrap_future(runtime.audit.submit_invocation(record))
    written.add_done_callback(_settled)
    try:
        await asyncio.wait_for(asyncio.shield(written), runtime.settings.audit_wait_seconds)
    except TimeoutError:
        metrics.count_late_audit_record()
        log.warning(
            "audit record not committed within %.1f s; answered, the record stays queued",
            runtime.settings.audit_wait_seconds,
        )
        return
    metrics.observe_audit_write(time.perf_counter() - started)


def _settled(written: asyncio.Future[bool]) -> None:
    if not written.cancelled() and written.exception() is not None:
        log.error("audit record failed: %s", type(written.exception()).__name__)
