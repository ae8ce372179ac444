"""End to end against a real uvicorn server on a free port: discovery, a hook call with FHIR fallback to a
real HTTP FHIR stub, feedback, and CORS for browser clients such as the CDS Hooks Sandbox."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from cds_service.app import create_app
from cds_service.fhir.local import LocalFhirStore
from cds_service.knowledge import Knowledge
from cds_service.scenarios import split_record
from cds_service.settings import Settings
from tests.conftest import fixed_clock
from tests.support import (
    REPO,
    SIGN,
    assert_valid,
    fallback_request,
    free_port,
    hook_request,
    rule_ids,
    scenario,
    start_serve,
    uvicorn_in_thread,
)

SANDBOX = "https://sandbox.cds-hooks.org"


@pytest.fixture(scope="module")
def service_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("e2e"),
        cards_dir=REPO / "cards",
        cors_origins=[SANDBOX],
    )
    with uvicorn_in_thread(create_app(settings, clock=fixed_clock), lifespan="on") as url:
        yield url


@pytest.fixture(scope="module")
def fhir_stub() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTP server answering the service's FHIR queries from the partner-missing record."""
    _patient, _, record = split_record(scenario("partner-missing"))
    store = LocalFhirStore(record)
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append({"path": self.path, "authorization": self.headers.get("Authorization")})
            answer = store.query(self.path.removeprefix("/fhir/"))
            body = orjson.dumps(answer) if answer is not None else b'{"resourceType":"OperationOutcome"}'
            self.send_response(200 if answer is not None else 404)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/fhir", seen
    server.shutdown()
    server.server_close()


def test_discovery_over_http(service_url: str) -> None:
    response = httpx.get(f"{service_url}/cds-services")
    assert response.status_code == 200
    assert_valid(response.json(), "DiscoveryResponse")


def test_hook_call_with_prefetch_and_feedback(service_url: str, knowledge: Knowledge) -> None:
    response = httpx.post(f"{service_url}/cds-services/{SIGN}", json=hook_request(knowledge, "partner-missing"))
    assert response.status_code == 200
    body = response.json()
    assert_valid(body, "ServiceResponse")
    assert rule_ids(body, at_least="warning") == {("partner-missing", "warning")}
    card = body["cards"][0]
    feedback = {
        "feedback": [{"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-20T15:05:00Z"}]
    }
    stored = httpx.post(f"{service_url}/cds-services/{SIGN}/feedback", json=feedback)
    assert stored.json() == {"stored": 1, "duplicates": 0, "unknownCards": []}


def test_hook_call_reading_a_real_fhir_server(
    service_url: str, knowledge: Knowledge, fhir_stub: tuple[str, list[dict[str, Any]]]
) -> None:
    base, seen = fhir_stub
    request = fallback_request(knowledge, "partner-missing", base, token="e2e-token")
    response = httpx.post(f"{service_url}/cds-services/{SIGN}", json=request, timeout=10)
    assert response.status_code == 200, response.text
    assert rule_ids(response.json(), at_least="warning") == {("partner-missing", "warning")}
    assert len(seen) == len(knowledge.registry[SIGN].prefetch)
    assert {entry["authorization"] for entry in seen} == {"Bearer e2e-token"}


def test_malformed_request_over_http_is_400(service_url: str) -> None:
    response = httpx.post(
        f"{service_url}/cds-services/{SIGN}", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"


def test_cors_preflight_and_post_headers_for_allowed_origin(service_url: str, knowledge: Knowledge) -> None:
    preflight = httpx.options(
        f"{service_url}/cds-services/{SIGN}",
        headers={
            "Origin": SANDBOX,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == SANDBOX
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed
    assert "content-type" in allowed
    post = httpx.post(
        f"{service_url}/cds-services/{SIGN}",
        json=hook_request(knowledge, "clean-base-order"),
        headers={"Origin": SANDBOX},
    )
    assert post.headers["access-control-allow-origin"] == SANDBOX
    assert "access-control-allow-credentials" not in post.headers


def test_cors_refuses_other_origins(service_url: str) -> None:
    preflight = httpx.options(
        f"{service_url}/cds-services",
        headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers
    get = httpx.get(f"{service_url}/cds-services", headers={"Origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in get.headers


def test_serve_command_starts_the_service(tmp_path_factory: pytest.TempPathFactory) -> None:
    """`python -m cds_service serve` as the README runs it, on its embedded defaults."""
    import os
    import subprocess
    import sys

    port = free_port()
    data = tmp_path_factory.mktemp("serve")
    env = {**os.environ, "CDS_DATA_DIR": str(data)}
    process = subprocess.Popen(
        [sys.executable, "-m", "cds_service", "serve", "--port", str(port)],
        cwd=data,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/cds-services", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "serve did not answer"
                time.sleep(0.1)
        assert response.status_code == 200
        assert {s["id"] for s in response.json()["services"]} == {SIGN, "palbociclib-order-select"}
        assert (data / "cds-audit.sqlite3").exists()
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stderr:
            process.stderr.close()


def test_serve_closes_an_idle_keep_alive_connection_after_the_configured_time(tmp_path: Path) -> None:
    """``CDS_KEEP_ALIVE_SECONDS`` reaches uvicorn: behind a load balancer that holds idle connections for
    longer than uvicorn's 5 s default, the service must not be the side that closes them first."""
    port = free_port()
    process = start_serve(port, {"CDS_DATA_DIR": str(tmp_path), "CDS_KEEP_ALIVE_SECONDS": "1"}, workers=1)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=4) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: cds.example.org\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            answered = time.monotonic()
            while sock.recv(65536):  # until the server closes; with the 5 s default this times out at 4 s
                pass
            idle = time.monotonic() - answered
        assert 0.5 < idle < 3, idle
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
