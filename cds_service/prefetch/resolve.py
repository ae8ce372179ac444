"""Turn a request's prefetch into ``PatientData``, reading absent keys from the FHIR server.

CDS Hooks 2.0 §Prefetch: an absent key was not satisfied and is fetched; a ``null`` key means there is
no data and is not re-queried; an OperationOutcome means the EHR's own fetch failed (it is re-queried
when a FHIR server is at hand). All fetches run concurrently under one deadline; whatever is not done by
then counts as failed, so the call still answers in time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from cds_service.fhir.client import FetchFailed, FhirGateway
from cds_service.prefetch.model import KeyOutcome, PatientData, QueryOutcome
from cds_service.prefetch.templates import render, token_values
from cds_service.services import PrefetchKey
from cds_service.snapshot.fhirjson import bundle_resources


def _from_prefetch(spec: PrefetchKey, value: dict[str, Any]) -> tuple[tuple[dict[str, Any], ...], KeyOutcome]:
    kind = value.get("resourceType")
    if kind == "OperationOutcome":
        return (), KeyOutcome(spec.key, "operation-outcome", "the EHR could not fetch it")
    if kind == "Bundle" or kind == spec.resource_type:
        return tuple(bundle_resources(value)), KeyOutcome(spec.key, "prefetched")
    return (), KeyOutcome(spec.key, "failed", f"expected {spec.resource_type} data, got {kind!r}")


async def _fetch(gateway: FhirGateway, spec: PrefetchKey, query: str) -> tuple[tuple[dict[str, Any], ...], KeyOutcome]:
    try:
        if spec.resource_type == "Patient" and "?" not in query:
            resource, queries = await gateway.read(spec.key, query, spec.resource_type)
            return (resource,), KeyOutcome(spec.key, "fetched", queries=tuple(queries))
        resources, queries = await gateway.search(spec.key, query, spec.limit)
        return tuple(resources), KeyOutcome(spec.key, "fetched", queries=tuple(queries))
    except FetchFailed as failed:
        return (), KeyOutcome(spec.key, "failed", failed.reason, tuple(failed.outcomes))


async def _fetch_all(
    gateway: FhirGateway, pending: Mapping[str, tuple[PrefetchKey, str]], timeout: float
) -> dict[str, tuple[tuple[dict[str, Any], ...], KeyOutcome]]:
    """Run every pending query at once; those unfinished at the deadline are cancelled and count as failed."""
    tasks = {key: asyncio.create_task(_fetch(gateway, spec, query)) for key, (spec, query) in pending.items()}
    done, not_done = await asyncio.wait(tasks.values(), timeout=max(timeout, 0.0))
    for task in not_done:
        task.cancel()
    if not_done:
        await asyncio.gather(*not_done, return_exceptions=True)
    results = {}
    for key, task in tasks.items():
        if task in done and not task.cancelled() and task.exception() is None:
            results[key] = task.result()
        else:
            spec, _ = pending[key]
            timed_out = QueryOutcome(key, spec.resource_type, None, "timeout", timeout * 1000)
            results[key] = ((), KeyOutcome(key, "failed", "timed out (call deadline)", (timed_out,)))
    return results


async def resolve(
    keys: Sequence[PrefetchKey],
    prefetch: Mapping[str, dict[str, Any] | None] | None,
    context: Mapping[str, Any],
    gateway: FhirGateway | None,
    *,
    timeout: float,
    no_server_reason: str = "not in the prefetch and no FHIR server to read it from",
) -> PatientData:
    prefetch = prefetch or {}
    values = token_values(context)
    results: dict[str, tuple[tuple[dict[str, Any], ...], KeyOutcome]] = {}
    pending: dict[str, tuple[PrefetchKey, str]] = {}

    for spec in keys:
        if spec.key in prefetch:
            value = prefetch[spec.key]
            if value is None:
                results[spec.key] = ((), KeyOutcome(spec.key, "null"))
                continue
            found, outcome = _from_prefetch(spec, value)
            if outcome.state != "operation-outcome" or gateway is None:
                results[spec.key] = (found, outcome)
                continue
        query = render(spec.template, values)
        if gateway is None or query is None:
            reason = no_server_reason if query is not None else "its query needs a context value the call lacks"
            results[spec.key] = ((), KeyOutcome(spec.key, "no-fhir-server", reason))
            continue
        pending[spec.key] = (spec, query)

    if pending and gateway is not None:
        results.update(await _fetch_all(gateway, pending, timeout))
    return PatientData(
        resources={k: found for k, (found, outcome) in results.items() if outcome.available},
        outcomes={s.key: results[s.key][1] for s in keys},
    )
