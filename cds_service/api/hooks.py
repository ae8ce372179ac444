"""``POST /cds-services/{id}`` (CDS Hooks 2.0 §Calling a CDS Service): parse, evaluate, record, answer."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from cds_service import pipeline
from cds_service.api.deps import Runtime, RuntimeDep, json_body
from cds_service.errors import UnknownService
from cds_service.fhir.client import FhirGateway, refuse_base
from cds_service.render import Renderer
from cds_service.schemas.hooks import HookRequest
from cds_service.schemas.parse import parse_hook_request
from cds_service.services import ServiceDefinition

router = APIRouter()


def service_or_404(runtime: Runtime, service_id: str) -> ServiceDefinition:
    service = runtime.knowledge.registry.get(service_id)
    if service is None:
        raise UnknownService(f"no CDS service {service_id!r}; GET /cds-services lists them")
    return service


def gateway_for(runtime: Runtime, request: HookRequest) -> tuple[FhirGateway | None, str]:
    """The FHIR server of the call, or why there is none to read from."""
    if request.fhirServer is None:
        return None, "not in the prefetch and the call named no FHIR server"
    refusal = refuse_base(request.fhirServer, runtime.settings.fhir_allow_http)
    if refusal is not None:
        return None, refusal
    token = request.fhirAuthorization.access_token if request.fhirAuthorization else None
    gateway = FhirGateway(
        runtime.http,
        request.fhirServer,
        token,
        timeout=runtime.settings.fhir_query_timeout_seconds,
        max_pages=runtime.settings.fhir_max_pages,
    )
    return gateway, ""


def json_response(content: dict[str, Any], version: str) -> Response:
    return Response(orjson.dumps(content), media_type="application/json", headers={"X-Knowledge-Version": version})


@router.post("/cds-services/{service_id}", summary="Call a CDS service (order-sign or order-select)")
async def call_service(service_id: str, request: Request, runtime: RuntimeDep) -> Response:
    service = service_or_404(runtime, service_id)
    body = await json_body(request)
    hook_request, context = parse_hook_request(body, service.id, service.hook)
    gateway, no_server_reason = gateway_for(runtime, hook_request)
    knowledge = runtime.knowledge
    evaluation = await pipeline.evaluate(
        knowledge=knowledge,
        service=service,
        context=context,
        prefetch=hook_request.prefetch,
        gateway=gateway,
        no_server_reason=no_server_reason,
        renderer=Renderer(
            knowledge.catalogue, knowledge.site, knowledge.version, runtime.new_uuid, knowledge.valuesets
        ),
        now=runtime.clock(),
        budget_seconds=runtime.settings.deadline_seconds * 0.85,
    )
    await run_in_threadpool(
        runtime.audit.record_cards,
        hook_instance=hook_request.hookInstance,
        service_id=service.id,
        cards=evaluation.response.cards,
        knowledge_version=knowledge.version,
    )
    return json_response(evaluation.response.wire(), knowledge.version)
