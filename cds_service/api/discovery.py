"""``GET /cds-services`` (CDS Hooks 2.0 §Discovery) and ``GET /version``, from the one registry."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from cds_service.api import openapi
from cds_service.api.caller import require_caller
from cds_service.api.deps import RuntimeDep

router = APIRouter()


@router.get(
    "/cds-services",
    summary="CDS Hooks discovery",
    response_model=None,
    responses={
        200: {"content": {"application/json": {"schema": openapi.ref("DiscoveryResponse")}}},
        **openapi.errors(401),
    },
)
async def discovery(request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    await require_caller(runtime, request)
    knowledge = runtime.knowledge
    extension = {knowledge.catalogue.common.knowledge_extension: {"knowledgeVersion": knowledge.version}}
    return {"services": [s.discovery_entry(extension) for s in knowledge.registry.values()]}


@router.get("/version", summary="Knowledge version: package, cards, value sets and site configuration")
async def version(runtime: RuntimeDep) -> dict[str, Any]:
    return runtime.knowledge.describe()
