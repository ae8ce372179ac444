"""The FHIR fallback path timed from both ends: order-sign calls without prefetch against bench/fhir_stub.py with a
fixed latency injected into every query (its ``slow`` fault), the stub timing each query as it serves it.

With the queries running concurrently, a call takes about as long as its slowest query; the figure reported is
the call's total latency (seen by the caller) over the slowest query (seen by the stub).
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from bench.fhir_stub import FhirStub
from bench.pinned_server import SERVICE_PATH, KeepAliveClient
from cds_service.fhir.local import LocalFhirStore
from cds_service.knowledge import Knowledge
from cds_service.scenarios import request_from_record, split_record
from cds_service.settings import Settings

SERVICE = "palbociclib-order-sign"


class TimedStub(FhirStub):
    """The fault-injecting stub, recording (start, end) of every query it answers."""

    def __init__(self, store: LocalFhirStore, latency_s: float) -> None:
        super().__init__(store, slow_seconds=latency_s)
        # socketserver listens with a backlog of 5: a burst of concurrent queries would overflow it, and the
        # connections beyond it would wait a second for the SYN to be retried, timing the stub, not the service.
        self._server.socket.listen(128)
        self._served: list[tuple[float, float]] = []
        self._lock = threading.Lock()

    def answer(self, handler: BaseHTTPRequestHandler, fault: str, rest: str) -> None:
        started = time.perf_counter()
        try:
            super().answer(handler, fault, rest)
        finally:
            ended = time.perf_counter()
            with self._lock:
                self._served.append((started, ended))

    def take(self) -> list[tuple[float, float]]:
        with self._lock:
            served, self._served = self._served, []
        return served


def service_limits() -> dict[str, float]:
    """The service's own bounds on the fallback (their defaults: the benchmark runs without CDS_ overrides)."""
    fields = Settings.model_fields
    return {
        "CDS_FHIR_QUERY_TIMEOUT_SECONDS": float(fields["fhir_query_timeout_seconds"].default),
        "CDS_DEADLINE_SECONDS": float(fields["deadline_seconds"].default),
    }


def fallback_body(knowledge: Knowledge, scenario: Path, fhir_base: str, index: int) -> bytes:
    request = request_from_record(
        json.loads(scenario.read_text()),
        knowledge.registry[SERVICE],
        with_prefetch=False,
        hook_instance=f"bench-fallback-{index}",
    )
    request["fhirServer"] = fhir_base
    return json.dumps(request).encode()


def _unavailable(answer: bytes) -> bool:
    cards = json.loads(answer).get("cards", [])
    return any(card.get("source", {}).get("topic", {}).get("code") == "data-unavailable" for card in cards)


def run_fallback(
    service_url: str, knowledge: Knowledge, scenario: Path, *, latency_s: float, calls: int, warmup: int
) -> dict[str, Any]:
    """``calls`` sequential fallback calls (after ``warmup`` untimed ones); per call: total, slowest query, the
    span from the first query's start to the last one's end, and their ratio."""
    limits = service_limits()
    if latency_s >= min(limits.values()):
        raise ValueError(f"injected latency {latency_s} s is not below the service's bounds {limits}")
    _, _, record = split_record(json.loads(scenario.read_text()))
    stub = TimedStub(LocalFhirStore(record), latency_s)
    stub.start()
    totals: list[float] = []
    slowest: list[float] = []
    spans: list[float] = []
    queries: list[int] = []
    statuses: dict[str, int] = {}
    unavailable = 0
    try:
        with KeepAliveClient(service_url, timeout=10) as client:
            for index in range(warmup + calls):
                body = fallback_body(knowledge, scenario, stub.base("slow"), index)
                stub.take()
                started = time.perf_counter()
                status, answer = client.request("POST", SERVICE_PATH, body)
                total = time.perf_counter() - started
                time.sleep(0.05)  # lets the stub's threads finish recording the queries just answered
                served = stub.take()
                if index < warmup:
                    continue
                statuses[str(status)] = statuses.get(str(status), 0) + 1
                if status != 200:
                    continue
                if _unavailable(answer) or not served:
                    unavailable += 1  # some query did not finish: not a complete fallback
                    continue
                totals.append(total * 1000)
                slowest.append(max(end - start for start, end in served) * 1000)
                spans.append((max(end for _, end in served) - min(start for start, _ in served)) * 1000)
                queries.append(len(served))
    finally:
        stub.stop()
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
    }
    if totals:
        result.update(
            {
                "queries_per_call": statistics.median(queries),
                "total_ms": _summary(totals),
                "slowest_query_ms": _summary(slowest),
                "query_span_ms": _summary(spans),
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
