"""The service's outbound HTTP clients (FHIR fallback queries, JWK Set fetches), and the one retry they make.

Servers close idle keep-alive connections on a timer: uvicorn and Node.js after 5 s, which is also httpx's
``keepalive_expiry``, so the two clocks meet. A request written to a connection at that moment finds it closed
(``Server disconnected without sending a response``) or reset (``ReadError``). With the fallback's queries spread
over many clients, a hook call about 5 s after the last one lost several queries this way, and the clinician got
a "could not obtain" card for a healthy server. The server never answered such a request, and a GET may be sent
again: it is, once, on a new connection.
"""

from __future__ import annotations

import ssl
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx

from cds_service import metrics

# Errors raised before any response arrived: a response's body is read later, outside the transport, so a
# connection lost part-way through an answer is not retried here.
_BROKEN_CONNECTION = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
_SAFE_METHODS = frozenset({"GET", "HEAD"})


class ReconnectingTransport(httpx.AsyncBaseTransport):
    """Sends a GET or HEAD again, once, when its connection broke before the response began."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self._inner.handle_async_request(request)
        except _BROKEN_CONNECTION:
            if request.method not in _SAFE_METHODS:
                raise
        # httpcore has dropped the broken connection from its pool: this goes out on another one.
        metrics.count_reconnect()
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def no_cookies() -> CookieJar:
    """A cookie jar that keeps none. The FHIR clients are shared by every hook call, so a cookie an EHR's FHIR
    server set during one clinician's call would otherwise go out with the next call, made with another
    clinician's token."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


def outbound_client(limits: httpx.Limits, tls: ssl.SSLContext, cookies: CookieJar | None = None) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` that ignores proxy variables (``trust_env=False``) and retries broken connections."""
    transport = ReconnectingTransport(httpx.AsyncHTTPTransport(verify=tls, limits=limits, trust_env=False))
    return httpx.AsyncClient(transport=transport, trust_env=False, cookies=cookies)
