"""Signing keys of trusted CDS clients: an inline JWK Set, a JWKS URL, or an allowlisted ``jku``.

Fetched key sets are cached and fetched again, at most once a minute per URL, when a token names an
unknown ``kid`` (key rotation).
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt

_REFRESH_SECONDS = 60.0


class KeyUnavailable(Exception):
    pass


class KeyCache:
    def __init__(self, http: httpx.AsyncClient, timeout: float = 2.0) -> None:
        self._http = http
        self._timeout = timeout
        self._sets: dict[str, dict[str, jwt.PyJWK]] = {}
        self._fetched: dict[str, float] = {}

    @staticmethod
    def parse(jwks: dict[str, Any]) -> dict[str, jwt.PyJWK]:
        keys: dict[str, jwt.PyJWK] = {}
        for entry in jwks.get("keys") or []:
            if isinstance(entry, dict) and isinstance(entry.get("kid"), str):
                try:
                    keys[entry["kid"]] = jwt.PyJWK(entry)
                except (jwt.PyJWKError, jwt.InvalidKeyError):
                    continue
        return keys

    async def key(self, url: str, kid: str) -> jwt.PyJWK:
        keys = self._sets.get(url)
        if keys is None or (kid not in keys and time.monotonic() - self._fetched.get(url, 0.0) > _REFRESH_SECONDS):
            keys = await self._fetch(url)
        if kid not in keys:
            raise KeyUnavailable(f"no key {kid!r} at {url}")
        return keys[kid]

    async def _fetch(self, url: str) -> dict[str, jwt.PyJWK]:
        self._fetched[url] = time.monotonic()
        try:
            response = await self._http.get(url, timeout=self._timeout, follow_redirects=False)
            response.raise_for_status()
            keys = self.parse(response.json())
        except (httpx.HTTPError, ValueError) as exc:
            raise KeyUnavailable(f"cannot read the JWK Set at {url}") from exc
        self._sets[url] = keys
        return keys
