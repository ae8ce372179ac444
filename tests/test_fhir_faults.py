"""The fault matrix: a real service reading a FHIR server over real HTTP that misbehaves in each way the
field sees. Each call answers within the deadline with 200 and a data-unavailable card (or 412 when
nothing at all could be read), never a 500, and the audit record says what failed."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from bench.fhir_stub import FAULTS, RECOVERABLE_FAULTS
from cds_service.app import create_app
from cds_service.knowledge import Knowledge
from cds_service.settings import Settings
from tests.conftest import fixed_clock
from tests.support import REPO, SIGN, fallback_request, hook_request

DEADLINE = 2.0


class RemoteStub:
    """The fault-injecting FHIR endpoint in its own process, as a real FHIR server would be."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.fhir_stub",
                "--scenario",
                "clean-base-order",
                "--slow-seconds",
                str(DEADLINE * 1.5),
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())

    def base(self, fault: str = "none") -> str:
        return f"http://127.0.0.1:{self.port}/fault/{fault}/fhir"


def _remote_stub() -> Iterator[RemoteStub]:
    server = RemoteStub()
    yield server
    server.process.terminate()
    server.process.wait(timeout=10)
    if server.process.stdout is not None:
        server.process.stdout.close()


@pytest.fixture(scope="module")
def stub() -> Iterator[RemoteStub]:
    yield from _remote_stub()


@pytest.fixture
def idle_stub() -> Iterator[RemoteStub]:
    """A stub of its own: the shared one may still be writing the abandoned answers of the faults before
    (ten thousand entries, five pages, for each query), and on a slow host that delayed the healthy answers
    past the query timeout."""
    yield from _remote_stub()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path,
        cards_dir=REPO / "cards",
        deadline_seconds=DEADLINE,
        fhir_query_timeout_seconds=DEADLINE * 0.8,
        fhir_max_pages=5,
    )
    with TestClient(create_app(settings, clock=fixed_clock), raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize("fault", [f for f in FAULTS if f != "none"])
@pytest.mark.parametrize("partial", [True, False], ids=["some-keys-prefetched", "no-prefetch"])
def test_fault(service: TestClient, stub: RemoteStub, knowledge: Knowledge, fault: str, partial: bool) -> None:
    keep = ("patient", "medicationRequests", "medicationStatements") if partial else ()
    request = fallback_request(knowledge, "clean-base-order", stub.base(fault), token="t", keep=keep)
    started = time.monotonic()
    response = service.post(f"/cds-services/{SIGN}", json=request)
    elapsed = time.monotonic() - started
    assert elapsed < DEADLINE + 1.0, f"{fault} took {elapsed:.1f}s"
    assert response.status_code in (200, 412), response.text
    [record] = service.app.state.runtime.audit.records("invocation")  # type: ignore[attr-defined]
    failed = {k: v for k, v in record["prefetch"].items() if v["state"] == "failed"}
    # 10,000 entries may be read within the deadline (searches are read up to their bound) or not,
    # depending on the machine's load: either way nothing unread may pass for read.
    assert failed or fault == "huge", f"{fault}: no failed key recorded"
    if response.status_code == 412:
        assert not partial  # 412 only when nothing could be had
    elif failed:
        cards = {c["source"]["topic"]["code"] for c in response.json()["cards"]}
        assert "data-unavailable" in cards
    assert all(v["reason"] for v in failed.values())


def test_healthy_server_through_the_same_path(service: TestClient, idle_stub: RemoteStub, knowledge: Knowledge) -> None:
    request = fallback_request(knowledge, "clean-base-order", idle_stub.base("none"), token="t")
    response = service.post(f"/cds-services/{SIGN}", json=request)
    assert response.status_code == 200
    assert response.json()["cards"] == [] or all(c["indicator"] == "info" for c in response.json()["cards"])
    assert hook_request(knowledge, "clean-base-order")  # the same scenario, prefetched, is clean too


def _reconnects() -> float:
    return REGISTRY.get_sample_value("cds_http_reconnects_total") or 0.0


@pytest.mark.parametrize("fault", RECOVERABLE_FAULTS)
def test_a_connection_closed_as_it_is_reused_is_read_on_a_new_one(
    service: TestClient, idle_stub: RemoteStub, knowledge: Knowledge, fault: str
) -> None:
    """The server answers each connection's first request and drops the connection at the next, as a server
    whose keep-alive timer fires just as the service reuses the connection (uvicorn and Node.js close idle
    connections after 5 s, httpx keeps them 5 s). The second call reuses every connection of the first: each
    query is sent again on a new connection, and the call reads the whole record."""
    request = fallback_request(knowledge, "clean-base-order", idle_stub.base(fault), token="t")
    before = _reconnects()
    for _ in range(2):
        response = service.post(f"/cds-services/{SIGN}", json=request)
        assert response.status_code == 200, response.text
        assert all(c["indicator"] == "info" for c in response.json()["cards"]), response.json()["cards"]
    first, second = service.app.state.runtime.audit.records("invocation")  # type: ignore[attr-defined]
    for record in (first, second):
        assert {v["state"] for v in record["prefetch"].values()} == {"fetched"}
    assert _reconnects() - before >= len(second["prefetch"])
