"""CDS Hooks 2.0 caller authentication (§Trusting CDS Clients; best practices, six checks).

A call must carry ``Authorization: Bearer <JWT>`` signed by a trusted client: the issuer is allowlisted,
``alg`` is one of the configured asymmetric algorithms (never ``none`` or HS*), ``typ`` is JWT and
``kid`` names a key of that issuer's JWK Set (inline, from its JWKS URL, or from an allowlisted ``jku``),
``aud`` is the URL that was called, ``exp`` and ``iat`` are within a small clock skew and a maximum age,
``tenant`` is allowlisted when the issuer lists tenants, and ``jti`` has never been seen (checked in the
shared audit database, so across workers and replicas). Any failure is a 401 without detail; the reason
goes to the audit log, never the token.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cds_service.security.keys import KeyCache, KeyUnavailable

FORBIDDEN_ALGORITHMS = frozenset({"none", "HS256", "HS384", "HS512"})


class Unauthorized(Exception):
    """The call is not from a trusted client; ``reason`` is for the audit log only."""

    def __init__(self, reason: str, claims: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.claims = claims or {}


class TrustedClient(BaseModel):
    """One EHR (or sandbox) the service accepts calls from."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    iss: str = Field(min_length=1)
    jwks: dict[str, Any] | None = None
    jwks_url: str | None = None
    jku_allowlist: list[str] = Field(default_factory=list)
    tenants: list[str] | None = None
    algorithms: list[str] = Field(default_factory=lambda: ["ES384", "RS384"])

    @model_validator(mode="after")
    def _has_keys_and_safe_algorithms(self) -> TrustedClient:
        if self.jwks is None and self.jwks_url is None and not self.jku_allowlist:
            raise ValueError(f"trusted client {self.iss!r} needs jwks, jwks_url or jku_allowlist")
        unsafe = sorted(set(self.algorithms) & FORBIDDEN_ALGORITHMS)
        if unsafe or not self.algorithms:
            raise ValueError(f"trusted client {self.iss!r}: algorithms must be asymmetric, not {unsafe}")
        return self


@dataclass(frozen=True)
class VerifiedCaller:
    iss: str
    tenant: str | None
    jti: str
    kid: str
    expires_at: int


class JwtVerifier:
    def __init__(
        self,
        clients: list[TrustedClient],
        keys: KeyCache,
        *,
        leeway: int = 30,
        max_age: int = 300,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clients = {c.iss: c for c in clients}
        self._keys = keys
        self._leeway = leeway
        self._max_age = max_age
        self._clock = clock

    async def verify(self, authorization: str | None, audience: str) -> VerifiedCaller:
        if not authorization or not authorization.startswith("Bearer "):
            raise Unauthorized("no Bearer token")
        token = authorization[len("Bearer ") :].strip()
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"malformed JWT ({type(exc).__name__})") from exc
        iss = unverified.get("iss")
        client = self._clients.get(iss) if isinstance(iss, str) else None
        if client is None:
            raise Unauthorized("issuer not trusted", {"iss": iss})
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in client.algorithms:
            raise Unauthorized(f"algorithm {alg!r} not allowed", {"iss": iss})
        if header.get("typ") != "JWT":
            raise Unauthorized("typ is not JWT", {"iss": iss})
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("no kid", {"iss": iss})
        key = await self._key(client, header, kid)
        try:
            # Times are checked below against the injected clock, not PyJWT's.
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=audience,
                issuer=client.iss,
                options={
                    "require": ["iss", "aud", "exp", "iat", "jti"],
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"JWT rejected ({type(exc).__name__})", {"iss": iss, "kid": kid}) from exc
        now = self._clock()
        exp, iat = claims["exp"], claims["iat"]
        if not isinstance(exp, int | float) or exp < now - self._leeway:
            raise Unauthorized("expired", {"iss": iss, "kid": kid})
        if not isinstance(iat, int | float) or iat > now + self._leeway or iat < now - self._max_age:
            raise Unauthorized("iat is in the future or too old", {"iss": iss, "kid": kid})
        tenant = claims.get("tenant")
        if client.tenants is not None and tenant not in client.tenants:
            raise Unauthorized("tenant not allowed", {"iss": iss, "kid": kid})
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti:
            raise Unauthorized("jti missing", {"iss": iss, "kid": kid})
        return VerifiedCaller(
            iss=client.iss,
            tenant=tenant if isinstance(tenant, str) else None,
            jti=jti,
            kid=kid,
            expires_at=int(claims["exp"]),
        )

    async def _key(self, client: TrustedClient, header: dict[str, Any], kid: str) -> jwt.PyJWK:
        jku = header.get("jku")
        try:
            if client.jwks is not None and kid in (inline := KeyCache.parse(client.jwks)):
                return inline[kid]
            if isinstance(jku, str) and jku:
                if jku not in client.jku_allowlist:
                    raise Unauthorized("jku not on the allowlist", {"iss": client.iss, "kid": kid})
                return await self._keys.key(jku, kid)
            if client.jwks_url:
                return await self._keys.key(client.jwks_url, kid)
        except KeyUnavailable as exc:
            raise Unauthorized(f"unknown key ({exc})", {"iss": client.iss, "kid": kid}) from exc
        raise Unauthorized("unknown kid", {"iss": client.iss, "kid": kid})
