"""Read prefetch queries from the EHR's FHIR server when the EHR did not send them.

The access token from ``fhirAuthorization`` is sent only to the FHIR base the EHR named: a Bundle ``next``
link to any other origin or path is not followed (smart-on-fhir/client-py sends the token wherever a link
points). Every failure becomes a ``QueryOutcome`` and never an exception out of ``fetch``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import time
from collections.abc import Sequence
from typing import Any

import httpx
import orjson

from cds_service import jsonload, metrics
from cds_service.prefetch.model import QueryOutcome

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})
MAX_RESPONSE_BYTES = 20 * 1024 * 1024
# A relative reference that appending to the base resolves as ``URL.join`` does: a resource type, then path
# segments that are neither empty nor dot segments, no scheme or fragment, and a non-empty query (join drops
# an empty one).
_PLAIN_RELATIVE = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:/(?!\.\.?(?:[/?]|$))[^/?#:]+)*(?:\?[^#]+)?")


class FetchFailed(Exception):
    """A query failed; ``outcomes`` holds every request made for it, the failed one last."""

    def __init__(self, outcome: QueryOutcome, reason: str, earlier: list[QueryOutcome] | None = None) -> None:
        super().__init__(reason)
        self.outcomes = [*(earlier or []), outcome]
        self.reason = reason


def is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def refuse_base(url: str, allow_http: bool) -> str | None:
    """Why a ``fhirServer`` URL must not be used, or ``None`` when it may."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "fhirServer is not a valid URL"
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return "fhirServer must be an http(s) URL"
    if parsed.userinfo:
        return "fhirServer must not carry credentials"
    if parsed.scheme == "http" and not (allow_http or is_loopback(parsed.host)):
        return "fhirServer uses plain http; the access token is sent over https only"
    return None


def without_query(url: httpx.URL) -> str:
    """``str(url.copy_with(query=None))`` without parsing the URL again."""
    text = str(url)
    if "?" not in text:
        return text
    # The first "#" starts the fragment (it is percent-encoded anywhere else); before it, "?" starts the query.
    head, mark, fragment = text.partition("#")
    return head.partition("?")[0] + mark + fragment


class FhirGateway:
    """The FHIR server of one hook call."""

    def __init__(
        self,
        http: httpx.AsyncClient | Sequence[httpx.AsyncClient],
        base_url: str,
        token: str | None,
        *,
        timeout: float,
        max_pages: int,
        request_id: str | None = None,
    ) -> None:
        # Queries are spread over several clients: httpcore's pool re-scans every queued request and
        # connection whenever one starts or ends (encode/httpcore#1035), so a call's burst of concurrent
        # queries costs one client quadratically more CPU than it costs several.
        self._clients = (http,) if isinstance(http, httpx.AsyncClient) else tuple(http)
        self._sent = 0
        self._base = httpx.URL(base_url.rstrip("/") + "/")
        self._base_text = str(self._base)
        self._token = token
        self._timeout = timeout
        self._max_pages = max_pages
        self._request_id = request_id

    def resolve(self, relative: str) -> httpx.URL:
        """``relative`` against the base, as ``URL.join`` resolves it. The prefetch templates' form
        ("Observation?patient=...") is appended and parsed once: join parses both URLs and the result again,
        about a third of the CPU of a query's URL handling (a test checks the two agree)."""
        if _PLAIN_RELATIVE.fullmatch(relative):
            return httpx.URL(self._base_text + relative)
        return self._base.join(relative)

    def _same_server(self, url: httpx.URL) -> bool:
        return (url.scheme, url.host, url.port) == (
            self._base.scheme,
            self._base.host,
            self._base.port,
        ) and url.path.startswith(self._base.path)

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/fhir+json"}
        if self._request_id:
            headers["X-Request-ID"] = self._request_id  # lets the EHR correlate its logs with ours
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    async def _get(self, key: str, url: httpx.URL, expect: str) -> tuple[dict[str, Any], QueryOutcome]:
        """One request, counted in the FHIR query metrics by how it ended (a query cancelled at the call deadline
        counts as a timeout, as the audit record has it)."""
        started = time.perf_counter()
        try:
            parsed, outcome = await self._request(key, url, expect, started)
        except FetchFailed as failed:
            last = failed.outcomes[-1]
            metrics.observe_fhir_query(metrics.fhir_outcome(last.outcome, last.status), last.elapsed_ms / 1000)
            raise
        except asyncio.CancelledError:
            metrics.observe_fhir_query("timeout", time.perf_counter() - started)
            raise
        metrics.observe_fhir_query("ok", outcome.elapsed_ms / 1000)
        return parsed, outcome

    async def _request(
        self, key: str, url: httpx.URL, expect: str, started: float
    ) -> tuple[dict[str, Any], QueryOutcome]:
        shown = without_query(url)  # the audit keeps the path; queries name patients

        def outcome(kind: Any, status: int | None = None, entries: int = 0) -> QueryOutcome:
            return QueryOutcome(key, shown, status, kind, (time.perf_counter() - started) * 1000, entries)

        try:
            client = self._clients[self._sent % len(self._clients)]
            self._sent += 1
            async with client.stream(
                "GET", url, headers=self._headers(), timeout=self._timeout, follow_redirects=False
            ) as response:
                if response.status_code != 200:
                    raise FetchFailed(outcome("http-error", response.status_code), f"HTTP {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body.extend(chunk)
                    if len(body) > MAX_RESPONSE_BYTES:
                        raise FetchFailed(outcome("malformed", 200), "response too large")
        except httpx.TimeoutException as exc:
            raise FetchFailed(outcome("timeout"), "timed out") from exc
        except httpx.HTTPError as exc:
            raise FetchFailed(outcome("network-error"), "connection failed") from exc
        try:
            parsed = jsonload.loads(body)
        except orjson.JSONDecodeError as exc:
            raise FetchFailed(outcome("malformed", 200), "malformed JSON") from exc
        if not isinstance(parsed, dict) or not isinstance(parsed.get("resourceType"), str):
            raise FetchFailed(outcome("malformed", 200), "not a FHIR resource")
        if parsed["resourceType"] != expect:
            wanted = "a Bundle" if expect == "Bundle" else expect
            raise FetchFailed(outcome("malformed", 200), f"expected {wanted}, got {parsed['resourceType']}")
        entries = len(parsed.get("entry") or []) if isinstance(parsed.get("entry"), list) else 0
        return parsed, outcome("ok", 200, entries)

    async def read(self, key: str, relative: str, resource_type: str) -> tuple[dict[str, Any], list[QueryOutcome]]:
        """One resource (``Patient/123``)."""
        resource, outcome = await self._get(key, self.resolve(relative), resource_type)
        return resource, [outcome]

    async def search(self, key: str, relative: str, limit: int) -> tuple[list[dict[str, Any]], list[QueryOutcome]]:
        """Entries of a search, following ``next`` links on the same server up to ``limit`` entries."""
        url: httpx.URL | None = self.resolve(relative)
        resources: list[dict[str, Any]] = []
        outcomes: list[QueryOutcome] = []
        pages = 0
        while url is not None and pages < self._max_pages and len(resources) < limit:
            try:
                bundle, outcome = await self._get(key, url, "Bundle")
            except FetchFailed as failed:
                raise FetchFailed(failed.outcomes[-1], failed.reason, outcomes) from failed
            outcomes.append(outcome)
            pages += 1
            for entry in bundle.get("entry") or []:
                if len(resources) >= limit:
                    break  # entries beyond the bound are not used
                resource = entry.get("resource") if isinstance(entry, dict) else None
                if isinstance(resource, dict) and resource.get("resourceType") not in (None, "OperationOutcome"):
                    resources.append(resource)
            url = self._next(bundle)
            if url is not None and not self._same_server(url) and len(resources) < limit:
                refused = QueryOutcome(key, without_query(url), None, "refused", 0.0)
                metrics.observe_fhir_query("refused", 0.0)  # a request not made: counted, with no latency
                raise FetchFailed(refused, "next link points outside the FHIR server; not followed", outcomes)
        if url is not None and len(resources) < limit:
            # Still more pages at the bound: the data is incomplete, and an incomplete list must not pass
            # for a complete one (a missing page could hold the interacting medicine).
            stopped = QueryOutcome(key, without_query(url), None, "refused", 0.0)
            metrics.observe_fhir_query("refused", 0.0)
            raise FetchFailed(stopped, f"paging did not end within {self._max_pages} pages", outcomes)
        return resources, outcomes

    def _next(self, bundle: dict[str, Any]) -> httpx.URL | None:
        for link in bundle.get("link") or []:
            if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
                try:
                    return self._base.join(link["url"])
                except httpx.InvalidURL:
                    return None
        return None
