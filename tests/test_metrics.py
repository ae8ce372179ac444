"""GET /metrics: hook and feedback latency by service and status, FHIR fallback queries by outcome, no patient
data, no JWT needed, and correct totals across uvicorn workers in prometheus-client's multiprocess mode.

Metrics are process-global, and other tests in the same process add to them: every check compares a scrape
taken before with one taken after."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from fastapi.testclient import TestClient
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from cds_service.fhir.client import FhirGateway
from cds_service.knowledge import Knowledge
from cds_service.scenarios import record_resources
from tests.support import (
    REPO,
    SELECT,
    SIGN,
    fallback_request,
    fhir_routes,
    free_port,
    hook_request,
    scenario,
    start_serve,
)

BASE = "https://ehr.example.org/fhir"
HOOK = "cds_hook_request_seconds"
FEEDBACK = "cds_feedback_request_seconds"
FHIR = "cds_fhir_query_seconds"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _scrape(client: TestClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    return _parse(response.text)


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return _value(after, name, **labels) - _value(before, name, **labels)


def _sign(client: TestClient, request: dict[str, Any]) -> dict[str, Any]:
    response = client.post(f"/cds-services/{SIGN}", json=request)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_hook_calls_are_counted_by_service_and_status(client: TestClient, knowledge: Knowledge) -> None:
    before = _scrape(client)
    for _ in range(3):
        assert _sign(client, hook_request(knowledge, "partner-missing"))["cards"]
    assert client.post(f"/cds-services/{SELECT}", json=hook_request(knowledge, "partner-missing", SELECT)).is_success
    assert client.post(f"/cds-services/{SIGN}", content=b"{not json").status_code == 400
    after = _scrape(client)

    assert _delta(before, after, f"{HOOK}_count", service=SIGN, status="200") == 3
    assert _delta(before, after, f"{HOOK}_bucket", service=SIGN, status="200", le="+Inf") == 3
    assert _delta(before, after, f"{HOOK}_sum", service=SIGN, status="200") > 0
    assert _delta(before, after, f"{HOOK}_count", service=SELECT, status="200") == 1
    assert _delta(before, after, f"{HOOK}_count", service=SIGN, status="400") == 1
    # Scraping, discovery and health checks are not hook calls.
    client.get("/cds-services")
    client.get("/healthz")
    again = _scrape(client)
    assert sum(v for (name, _), v in again.items() if name == f"{HOOK}_count") == sum(
        v for (name, _), v in after.items() if name == f"{HOOK}_count"
    )


def test_feedback_calls_have_their_own_histogram(client: TestClient, knowledge: Knowledge) -> None:
    card = _sign(client, hook_request(knowledge, "partner-missing"))["cards"][0]
    before = _scrape(client)
    feedback = {
        "feedback": [{"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-20T15:05:00Z"}]
    }
    assert client.post(f"/cds-services/{SIGN}/feedback", json=feedback).status_code == 200
    after = _scrape(client)
    assert _delta(before, after, f"{FEEDBACK}_count", service=SIGN, status="200") == 1
    assert _delta(before, after, f"{HOOK}_count", service=SIGN, status="200") == 0


def test_unknown_service_ids_are_counted_as_unknown(client: TestClient, knowledge: Knowledge) -> None:
    invented = [f"attacker-{uuid.uuid4().hex}" for _ in range(3)]
    before = _scrape(client)
    for service_id in invented:
        call = client.post(f"/cds-services/{service_id}", json=hook_request(knowledge, "partner-missing"))
        assert call.status_code == 404
        assert client.post(f"/cds-services/{service_id}/feedback", json={"feedback": []}).status_code == 404
    response = client.get("/metrics")
    after = _parse(response.text)
    assert _delta(before, after, f"{HOOK}_count", service="unknown", status="404") == 3
    assert _delta(before, after, f"{FEEDBACK}_count", service="unknown", status="404") == 3
    assert not any(service_id in response.text for service_id in invented)
    services = {
        value
        for (name, labels), _ in after.items()
        if name.startswith(HOOK)
        for key, value in labels
        if key == "service"
    }
    assert services <= {SIGN, SELECT, "unknown"}


def test_fhir_fallback_queries_are_counted_by_outcome(client: TestClient, knowledge: Knowledge) -> None:
    elsewhere = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [],
        "link": [{"relation": "next", "url": "https://elsewhere.example.org/fhir/MedicationStatement?page=2"}],
    }
    failing = {
        "medicationRequests": ("http_5xx", httpx.Response(503)),
        "nutritionOrders": ("http_4xx", httpx.Response(403)),
        "conditions": ("timeout", httpx.ReadTimeout("slow")),
        "procedures": ("network_error", httpx.ConnectError("reset")),
        "allergies": ("malformed", httpx.Response(200, content=b'{"resourceType": "Bundle", "entry": [')),
    }
    before = _scrape(client)
    with respx.mock(assert_all_called=True, assert_all_mocked=True) as router:
        routes = fhir_routes(router, knowledge, "partner-missing", BASE)
        for key, (_, effect) in failing.items():
            routes[key].mock(side_effect=effect)
        routes["medicationStatements"].mock(return_value=httpx.Response(200, json=elsewhere))
        body = _sign(client, fallback_request(knowledge, "partner-missing", BASE))
    response = client.get("/metrics")
    after = _parse(response.text)

    assert any(c["source"]["topic"]["code"] == "data-unavailable" for c in body["cards"])
    assert all(route.call_count == 1 for route in routes.values())
    for outcome in ("http_5xx", "http_4xx", "timeout", "network_error", "malformed", "refused"):
        assert _delta(before, after, f"{FHIR}_count", outcome=outcome) == 1, outcome
    assert _delta(before, after, f"{FHIR}_count", outcome="ok") == len(routes) - len(failing)
    assert _delta(before, after, f"{FHIR}_sum", outcome="ok") > 0
    for hidden in ("ehr.example.org", "elsewhere.example.org", "secret-token", "MedicationStatement"):
        assert hidden not in response.text


def test_a_query_cancelled_at_the_call_deadline_counts_as_a_timeout(client: TestClient) -> None:
    async def call() -> None:
        async with httpx.AsyncClient() as http:
            gateway = FhirGateway(http, BASE, "secret-token", timeout=30, max_pages=5)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(gateway.read("patient", "Patient/p1", "Patient"), timeout=0.05)

    asked: list[str] = []

    async def never_answers(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        await asyncio.sleep(30)
        return httpx.Response(200, json={"resourceType": "Patient"})

    before = _scrape(client)
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        router.get(f"{BASE}/Patient/p1").mock(side_effect=never_answers)
        asyncio.run(call())
    after = _scrape(client)
    assert asked == ["/fhir/Patient/p1"]  # the request was under way when the deadline cancelled it
    assert _delta(before, after, f"{FHIR}_count", outcome="timeout") == 1
    assert _delta(before, after, f"{FHIR}_count", outcome="ok") == 0


def _identifying(names: list[str]) -> set[str]:
    found: set[str] = set()
    for name in names:
        for resource in record_resources(scenario(name)):
            if isinstance(resource.get("id"), str):
                found.add(resource["id"])
            for person in resource.get("name") or []:
                found.update(part for part in [person.get("family"), *(person.get("given") or [])] if part)
            if resource.get("birthDate"):
                found.add(resource["birthDate"])
    return found


def test_metrics_carry_no_patient_data(client: TestClient, knowledge: Knowledge) -> None:
    names = ["partner-missing", "receptor-her2-positive-icd", "clean-base-order"]
    for name in names:
        _sign(client, hook_request(knowledge, name))
    with respx.mock(assert_all_called=False) as router:
        fhir_routes(router, knowledge, "partner-missing", BASE)
        _sign(client, fallback_request(knowledge, "partner-missing", BASE))
    text = client.get("/metrics").text
    identifying = _identifying([*names, "partner-missing"])
    assert "pmis-pat" in identifying  # the check below looks for the right things
    leaked = sorted(value for value in identifying if value in text)
    assert not leaked


def test_metrics_need_no_jwt_and_are_described(make_client: Any) -> None:
    client = make_client(auth_required=True)
    assert client.get("/cds-services").status_code == 401
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    expected = {
        HOOK: "histogram",
        FEEDBACK: "histogram",
        FHIR: "histogram",
        "cds_cards": "counter",
        "cds_audit_write_seconds": "histogram",
        "cds_audit_spool_depth": "gauge",
        "cds_http_reconnects": "counter",
    }
    for name, kind in expected.items():
        assert name in families, name
        assert families[name].type == kind, name
        assert families[name].documentation, name
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]


# Several workers, one PROMETHEUS_MULTIPROC_DIR: whichever worker answers the scrape, it reports every call.


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port, multiproc = free_port(), tmp_path / "prometheus"
    multiproc.mkdir()
    env = {
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "CDS_AUTH_REQUIRED": "false",
        "CDS_DATA_DIR": str(tmp_path / "data"),
    }
    process = start_serve(port, env)
    try:
        yield f"http://127.0.0.1:{port}", multiproc
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)


def _calls_per_worker(multiproc: Path) -> dict[str, float]:
    """Hook calls each worker recorded, read from its own file."""
    counts = {}
    for path in multiproc.glob("histogram_*.db"):
        for family in MultiProcessCollector.merge([str(path)]):
            for sample in family.samples:
                if sample.name == f"{HOOK}_count" and sample.labels == {"service": SIGN, "status": "200"}:
                    counts[path.stem] = sample.value
    return counts


@pytest.mark.e2e
def test_every_worker_s_calls_are_in_every_scrape(two_workers: tuple[str, Path], knowledge: Knowledge) -> None:
    url, multiproc = two_workers
    request = hook_request(knowledge, "partner-missing")

    def call(_: int) -> int:
        # A new connection per call, so the kernel hands calls to either worker.
        return httpx.post(f"{url}/cds-services/{SIGN}", json=request, timeout=10).status_code

    made = 0
    with ThreadPoolExecutor(max_workers=4) as pool:
        while made < 400:
            statuses = list(pool.map(call, range(8)))
            assert statuses == [200] * 8
            made += 8
            if len([n for n in _calls_per_worker(multiproc).values() if n > 0]) >= 2:
                break
    per_worker = _calls_per_worker(multiproc)
    assert len([n for n in per_worker.values() if n > 0]) >= 2, "every call went to one worker"
    assert sum(per_worker.values()) == made

    for _ in range(6):  # each scrape on a new connection: either worker may answer
        samples = _parse(httpx.get(f"{url}/metrics", timeout=10).text)
        assert _value(samples, f"{HOOK}_count", service=SIGN, status="200") == made
        assert _value(samples, f"{HOOK}_bucket", service=SIGN, status="200", le="+Inf") == made
        # The spool is shared by the workers: at most one depth (none before a spool is read), never one per worker.
        assert [labels for name, labels in samples if name == "cds_audit_spool_depth"] in ([], [frozenset()])


_SCRAPER = """
import sys
from prometheus_client.parser import text_string_to_metric_families
from cds_service import metrics

for line in sys.stdin:
    metrics.track_spool(lambda depth=int(line): depth)
    text = metrics.render()[0].decode()
    families = text_string_to_metric_families(text)
    print([s.value for f in families for s in f.samples if s.name == "cds_audit_spool_depth"], flush=True)
"""


def test_the_worker_answering_the_scrape_reports_the_spool_depth_it_reads(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _SCRAPER],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]

    def scrape(worker: subprocess.Popen[str], depth: int) -> str:
        assert worker.stdin is not None
        assert worker.stdout is not None
        worker.stdin.write(f"{depth}\n")
        worker.stdin.flush()
        return worker.stdout.readline().strip()

    first, second = workers
    try:
        assert scrape(first, 5) == "[5.0]"
        assert scrape(second, 2) == "[2.0]"  # one value for the machine, not one per worker
        assert scrape(first, 4) == "[4.0]"
        assert second.stdin is not None
        second.stdin.close()
        assert second.wait(timeout=10) == 0
        # An exited worker's gauge file goes with it; its histograms stay in the sums.
        assert not list(tmp_path.glob(f"gauge_*_{second.pid}.db"))
        assert list(tmp_path.glob(f"histogram_{second.pid}.db"))
        assert scrape(first, 1) == "[1.0]"
    finally:
        for worker in workers:
            if worker.stdin is not None and not worker.stdin.closed:
                worker.stdin.close()
            worker.wait(timeout=10)
            if worker.stdout is not None:
                worker.stdout.close()


def test_cards_audit_writes_and_spool_depth_are_reported(client: TestClient, knowledge: Knowledge) -> None:
    before = _scrape(client)
    cards = _sign(client, hook_request(knowledge, "partner-missing"))["cards"]
    _sign(client, hook_request(knowledge, "partner-missing"))
    after = _scrape(client)
    by_rule: dict[tuple[str, str], int] = {}
    for card in cards:
        key = (card["source"]["topic"]["code"], card["indicator"])
        by_rule[key] = by_rule.get(key, 0) + 2
    assert by_rule
    for (rule_id, indicator), count in by_rule.items():
        assert _delta(before, after, "cds_cards_total", rule_id=rule_id, indicator=indicator) == count
    assert _delta(before, after, "cds_audit_write_seconds_count") == 2
    assert _value(after, "cds_audit_spool_depth") == 0

    spool = client.app.state.runtime.audit.spool  # type: ignore[attr-defined]
    spool.append({"kind": "invocation", "content": {}})
    assert _value(_scrape(client), "cds_audit_spool_depth") == 1
    spool.path.unlink()
