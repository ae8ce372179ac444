"""The FHIR fallback path timed from both ends: order-sign calls without prefetch against bench/async_fhir_stub.py
(its own process, on the client core) with a fixed latency injected into every query, the stub timing each query
as it serves it.

With the queries running concurrently, a call takes about as long as its slowest query; the figure reported is
the call's total latency (seen by the caller) over the slowest query (seen by the stub). Next to it: each of the
service's queries made alone by a plain client, the latency no call can go below.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

from bench.async_fhir_stub import StubProcess
from bench.pinned_server import SERVICE_PATH, KeepAliveClient
from bench.records import record_as_of_today
from cds_service.knowledge import Knowledge
from cds_service.prefetch.templates import render, token_values
from cds_service.scenarios import request_from_record
from cds_service.settings import Settings

SERVICE = "palbociclib-order-sign"
STUB_CORE = 1  # the client core: the service runs on core 0


def service_limits() -> dict[str, float]:
    """The service's own bounds on the fallback (their defaults: the benchmark runs without CDS_ overrides)."""
    fields = Settings.model_fields
    return {
        "CDS_FHIR_QUERY_TIMEOUT_SECONDS": float(fields["fhir_query_timeout_seconds"].default),
        "CDS_DEADLINE_SECONDS": float(fields["deadline_seconds"].default),
    }


def fallback_body(knowledge: Knowledge, scenario: Path, fhir_base: str, index: int) -> bytes:
    request = request_from_record(
        record_as_of_today(scenario),
        knowledge.registry[SERVICE],
        with_prefetch=False,
        hook_instance=f"bench-fallback-{index}",
    )
    request["fhirServer"] = fhir_base
    return json.dumps(request).encode()


def service_queries(knowledge: Knowledge, scenario: Path) -> list[str]:
    """The FHIR queries the service makes for the scenario (its prefetch templates, filled in), relative to the base."""
    service = knowledge.registry[SERVICE]
    request = request_from_record(record_as_of_today(scenario), service, with_prefetch=False)
    values = token_values(request["context"])
    return [query for spec in service.prefetch if (query := render(spec.template, values)) is not None]


def single_queries(stub: StubProcess, queries: list[str], rounds: int) -> dict[str, Any]:
    """Each query made alone, one after another, over one keep-alive connection: its latency seen by the client
    and by the stub."""
    seen: list[float] = []
    with KeepAliveClient(f"http://127.0.0.1:{stub.port}") as client:
        for query in queries:  # the stub serialises each answer on first use
            client.request("GET", f"/fhir/{query}")
        stub.timings()
        for _ in range(rounds):
            for query in queries:
                started = time.perf_counter()
                status, _ = client.request("GET", f"/fhir/{query}")
                seen.append((time.perf_counter() - started) * 1000)
                if status != 200:
                    raise RuntimeError(f"the FHIR stub answered {status} to one of the service's queries")
    served = [duration for _, duration in stub.timings()]
    return {"queries": len(queries), "samples": len(seen), "client_ms": _summary(seen), "stub_ms": _summary(served)}


def _unavailable(answer: bytes) -> bool:
    cards = json.loads(answer).get("cards", [])
    return any(card.get("source", {}).get("topic", {}).get("code") == "data-unavailable" for card in cards)


def run_fallback(
    service_url: str,
    knowledge: Knowledge,
    scenario: Path,
    *,
    latency_s: float,
    calls: int,
    warmup: int,
    stub_core: int | None = STUB_CORE,
    single_rounds: int = 2,
) -> dict[str, Any]:
    """``calls`` sequential fallback calls (after ``warmup`` untimed ones); per call: total, slowest query, the
    span from the first query's arrival to the last one's answer, the spread of the arrivals, and total over
    slowest. Then the service's queries made alone, ``single_rounds`` times each."""
    limits = service_limits()
    if latency_s >= min(limits.values()):
        raise ValueError(f"injected latency {latency_s} s is not below the service's bounds {limits}")
    totals: list[float] = []
    slowest: list[float] = []
    spans: list[float] = []
    arrivals: list[float] = []
    queries: list[int] = []
    statuses: dict[str, int] = {}
    unavailable = 0
    with StubProcess(scenario, latency_s, core=stub_core) as stub, KeepAliveClient(service_url, timeout=10) as client:
        for index in range(warmup + calls):
            body = fallback_body(knowledge, scenario, stub.base, index)
            stub.timings()
            started = time.perf_counter()
            status, answer = client.request("POST", SERVICE_PATH, body)
            total = time.perf_counter() - started
            served = stub.timings()  # waits for answers still being sent
            if index < warmup:
                continue
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            if status != 200:
                continue
            if _unavailable(answer) or not served:
                unavailable += 1  # some query did not finish: not a complete fallback
                continue
            totals.append(total * 1000)
            slowest.append(max(duration for _, duration in served))
            spans.append(max(offset + duration for offset, duration in served))  # offsets count from the first
            arrivals.append(max(offset for offset, _ in served))
            queries.append(len(served))
        alone = single_queries(stub, service_queries(knowledge, scenario), single_rounds)
    ratios = [total / slow for total, slow in zip(totals, slowest, strict=True)]
    failures = sum(count for status, count in statuses.items() if status != "200") + unavailable
    result: dict[str, Any] = {
        "scenario": scenario.stem,
        "injected_latency_ms": round(latency_s * 1000, 1),
        "calls": calls,
        "complete_calls": len(totals),
        "statuses": statuses,
        "data_unavailable_cards": unavailable,
        "failures": failures,
        "ok": failures == 0 and bool(totals),
        "service_limits": limits,
        "stub": {"server": "bench.async_fhir_stub", "core": stub_core},
        "single_query_alone": alone,
    }
    if totals:
        result.update(
            {
                "queries_per_call": statistics.median(queries),
                "total_ms": _summary(totals),
                "slowest_query_ms": _summary(slowest),
                "query_span_ms": _summary(spans),
                "arrival_spread_ms": _summary(arrivals),
                "ratio_total_over_slowest": {key: round(value, 3) for key, value in _summary(ratios).items()},
            }
        )
    return result


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }
