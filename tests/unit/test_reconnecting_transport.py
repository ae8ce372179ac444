"""The outbound clients' one retry: only a GET or HEAD, only when the connection broke before any response, and
only once. (The service-level behaviour, against a real server that drops reused connections, is in
``tests/test_fhir_faults.py``.)"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client import REGISTRY

from cds_service.fhir.transport import ReconnectingTransport, no_cookies, outbound_client


class Scripted(httpx.AsyncBaseTransport):
    """Raises the scripted errors in turn, then answers 200; counts the requests it was handed."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.sent = 0
        self.closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent += 1
        if self.errors:
            raise self.errors.pop(0)
        return httpx.Response(200, json={"resourceType": "Bundle"})

    async def aclose(self) -> None:
        self.closed = True


def send(inner: Scripted, method: str = "GET") -> httpx.Response:
    async def run() -> httpx.Response:
        async with httpx.AsyncClient(transport=ReconnectingTransport(inner)) as client:
            return await client.request(method, "http://fhir.test/Patient/1")

    return asyncio.run(run())


def reconnects() -> float:
    return REGISTRY.get_sample_value("cds_http_reconnects_total") or 0.0


BROKEN = [
    httpx.RemoteProtocolError("Server disconnected without sending a response."),
    httpx.ReadError("[Errno 104] Connection reset by peer"),
    httpx.WriteError("[Errno 32] Broken pipe"),
]


@pytest.mark.parametrize("error", BROKEN, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_broken_connection_is_retried_once(error: Exception, method: str) -> None:
    inner, before = Scripted(error), reconnects()
    assert send(inner, method).status_code == 200
    assert inner.sent == 2
    assert reconnects() == before + 1


def test_a_second_break_is_not_retried() -> None:
    inner = Scripted(*BROKEN[:2])
    with pytest.raises(httpx.ReadError):
        send(inner)
    assert inner.sent == 2


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_other_methods_are_not_sent_again(method: str) -> None:
    inner, before = Scripted(BROKEN[0]), reconnects()
    with pytest.raises(httpx.RemoteProtocolError):
        send(inner, method)
    assert inner.sent == 1
    assert reconnects() == before


@pytest.mark.parametrize(
    "error",
    [httpx.ReadTimeout("timed out"), httpx.ConnectError("refused"), httpx.LocalProtocolError("bad header")],
    ids=lambda e: type(e).__name__,
)
def test_timeouts_refusals_and_local_errors_are_not_retried(error: Exception) -> None:
    """A timeout has already spent the query's time; a refused connection had no kept-alive connection to lose."""
    inner = Scripted(error)
    with pytest.raises(type(error)):
        send(inner)
    assert inner.sent == 1


def test_closing_the_client_closes_the_inner_transport() -> None:
    inner = Scripted()
    send(inner)
    assert inner.closed


def test_outbound_client_retries_and_reads_no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cookies: ``tests/test_prefetch_fallback.py`` has a server set one."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    client = outbound_client(httpx.Limits(), httpx.create_ssl_context(), cookies=no_cookies())
    assert isinstance(client._transport, ReconnectingTransport)
    assert client._mounts == {}  # with trust_env the proxy variable would mount a proxy transport
    asyncio.run(client.aclose())
