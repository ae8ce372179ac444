"""CDS Hooks 2.0 caller authentication: the spec's own ES384 token, RS384 and ES384 keys made here, and
each way a token must be refused; 401 without detail, the reason in the audit log, jti shared by replicas."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient

from cds_service.app import create_app
from cds_service.security.jwt_auth import JwtVerifier, TrustedClient, Unauthorized
from cds_service.security.keys import KeyCache
from cds_service.settings import Settings
from tests.conftest import fixed_clock
from tests.support import REPO, SIGN, free_port, hook_request

SPEC_DIR = REPO.parent / "shared" / "cds-hooks-spec" / "examples"
ISS = "https://ehr.example.org"
BASE = "https://cds.example.org"


def _es384() -> tuple[Any, dict[str, Any]]:
    key = ec.generate_private_key(ec.SECP384R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    return key, {**public, "kid": "es-1", "alg": "ES384", "use": "sig"}


def _rs384() -> tuple[Any, dict[str, Any]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return key, {**public, "kid": "rs-1", "alg": "RS384", "use": "sig"}


ES_KEY, ES_JWK = _es384()
RS_KEY, RS_JWK = _rs384()
OTHER_KEY, _ = _es384()


def token(
    path: str = f"/cds-services/{SIGN}",
    *,
    key: Any = ES_KEY,
    alg: str = "ES384",
    kid: str | None = "es-1",
    typ: str | None = "JWT",
    extra_headers: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    now = int(time.time())
    payload = {"iss": ISS, "aud": BASE + path, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4()), **claims}
    payload = {k: v for k, v in payload.items() if v is not None}
    headers: dict[str, Any] = {**(extra_headers or {})}
    if typ is not None:
        headers["typ"] = typ
    if kid is not None:
        headers["kid"] = kid
    encoded: str = jwt.encode(payload, key, algorithm=alg, headers=headers)
    return encoded


def _client_settings(tmp_path: Path, **overrides: Any) -> Settings:
    clients = [TrustedClient(iss=ISS, jwks={"keys": [ES_JWK, RS_JWK]}, tenants=None)]
    return Settings(
        data_dir=tmp_path,
        cards_dir=REPO / "cards",
        auth_required=True,
        trusted_clients=clients,
        public_base_url=BASE,
        **overrides,
    )


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(_client_settings(tmp_path), clock=fixed_clock), raise_server_exceptions=False) as c:
        yield c


def _call(client: TestClient, bearer: str | None, knowledge: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    return client.post(f"/cds-services/{SIGN}", json=hook_request(knowledge, "partner-missing"), headers=headers)


def test_valid_es384_and_rs384_tokens_are_accepted(secured: TestClient, knowledge: Any) -> None:
    assert _call(secured, token(), knowledge).status_code == 200
    assert _call(secured, token(key=RS_KEY, alg="RS384", kid="rs-1"), knowledge).status_code == 200
    assert (
        secured.get("/cds-services", headers={"Authorization": f"Bearer {token('/cds-services')}"}).status_code == 200
    )


def _refused(client: TestClient, bearer: str | None, knowledge: Any) -> str:
    response = _call(client, bearer, knowledge)
    assert response.status_code == 401
    body = response.json()
    assert body["issue"][0]["diagnostics"] == "unauthorized"  # no detail for the caller
    record = client.app.state.runtime.audit.records("invocation")[-1]  # type: ignore[attr-defined]
    assert record["httpStatus"] == 401
    assert bearer is None or bearer not in json.dumps(client.app.state.runtime.audit.records())  # type: ignore[attr-defined]
    reason: str = record["error"]["reason"]
    return reason


NEGATIVE = {
    "no-token": (lambda: None, "no Bearer token"),
    "wrong-key": (lambda: token(key=OTHER_KEY), "InvalidSignatureError"),
    "alg-none": (
        lambda: jwt.encode(
            {"iss": ISS, "aud": BASE, "exp": 9e9, "iat": time.time(), "jti": "x"},
            None,
            algorithm="none",
            headers={"kid": "es-1", "typ": "JWT"},
        ),
        "algorithm 'none'",
    ),
    "hs256": (lambda: token(key="a-shared-secret-of-32-bytes-long!!", alg="HS256"), "algorithm 'HS256'"),
    "missing-aud": (lambda: token(aud=None), "MissingRequiredClaimError"),
    "wrong-aud": (lambda: token(aud="https://elsewhere.example.org/cds-services/x"), "InvalidAudienceError"),
    "expired": (lambda: token(exp=int(time.time()) - 3600, iat=int(time.time()) - 3700), "expired"),
    "future-iat": (lambda: token(iat=int(time.time()) + 600), "iat"),
    "too-old-iat": (lambda: token(iat=int(time.time()) - 3600), "iat"),
    "unknown-iss": (lambda: token(iss="https://rogue.example.com"), "issuer not trusted"),
    "unknown-kid": (lambda: token(kid="nope"), "unknown kid"),
    "no-kid": (lambda: token(kid=None), "no kid"),
    "wrong-typ": (lambda: token(typ="at+jwt"), "typ"),
    "no-jti": (lambda: token(jti=None), "MissingRequiredClaimError"),
    "jku-not-allowlisted": (
        lambda: token(kid="zz", extra_headers={"jku": "https://attacker.example.com/jwks"}),
        "jku not on the allowlist",
    ),
    "garbage": (lambda: "not.a.jwt", "malformed"),
}


@pytest.mark.parametrize("case", NEGATIVE, ids=list(NEGATIVE))
def test_refused_tokens(secured: TestClient, knowledge: Any, case: str) -> None:
    make, reason = NEGATIVE[case]
    assert reason in _refused(secured, make(), knowledge)


def test_replayed_jti_is_refused(secured: TestClient, knowledge: Any) -> None:
    reused = token()
    assert _call(secured, reused, knowledge).status_code == 200
    assert "replay" in _refused(secured, reused, knowledge)


def test_tenant_allowlist(tmp_path: Path, knowledge: Any) -> None:
    clients = [TrustedClient(iss=ISS, jwks={"keys": [ES_JWK]}, tenants=["hospital-a"])]
    settings = Settings(
        data_dir=tmp_path, cards_dir=REPO / "cards", auth_required=True, trusted_clients=clients, public_base_url=BASE
    )
    with TestClient(create_app(settings, clock=fixed_clock)) as client:
        assert _call(client, token(tenant="hospital-a"), knowledge).status_code == 200
        assert _call(client, token(tenant="hospital-b"), knowledge).status_code == 401
        assert _call(client, token(), knowledge).status_code == 401


def test_feedback_and_discovery_need_a_token(secured: TestClient) -> None:
    assert secured.get("/cds-services").status_code == 401
    feedback = {"feedback": [{"card": "x", "outcome": "overridden", "outcomeTimestamp": "2026-11-20T15:00:00Z"}]}
    assert secured.post(f"/cds-services/{SIGN}/feedback", json=feedback).status_code == 401
    bearer = token(f"/cds-services/{SIGN}/feedback")
    assert (
        secured.post(
            f"/cds-services/{SIGN}/feedback", json=feedback, headers={"Authorization": f"Bearer {bearer}"}
        ).status_code
        == 200
    )
    failures = secured.app.state.runtime.audit.records("auth-failure")  # type: ignore[attr-defined]
    assert [f["path"] for f in failures] == ["/cds-services", f"/cds-services/{SIGN}/feedback"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_spec_example_token_with_time_frozen() -> None:
    directory = SPEC_DIR
    if not directory.exists():
        pytest.skip("shared/cds-hooks-spec is not beside the repository")
    example = json.loads((directory / "jwt-example-token.json").read_text())["jwt"]
    jwks = json.loads((directory / "jwt-example-jwks-public.json").read_text())
    kid = jwt.get_unverified_header(example)["kid"]
    jwks = {"keys": [{**k, "kid": k.get("kid", kid)} for k in jwks["keys"]]}
    client = TrustedClient(iss="https://fhir-ehr.example.com/", jwks=jwks, jku_allowlist=[])
    async with httpx.AsyncClient() as http:
        verifier = JwtVerifier([client], KeyCache(http), clock=lambda: 1311280970 + 10)
        caller = await verifier.verify(f"Bearer {example}", "https://cds.example.org/cds-services/some-service")
        assert caller.tenant == "2ddd6c3a-8e9a-44c6-a305-52111ad302a2"
        assert caller.jti == "ee22b021-e1b7-4611-ba5b-8eec6a33ac1e"
        late = JwtVerifier([client], KeyCache(http), clock=lambda: 1422568860 + 3600)
        with pytest.raises(Unauthorized, match="expired"):
            await late.verify(f"Bearer {example}", "https://cds.example.org/cds-services/some-service")


@pytest.mark.anyio
async def test_jwks_url_is_fetched_and_refreshed_on_an_unknown_kid() -> None:
    url = "https://ehr.example.org/.well-known/jwks.json"
    client = TrustedClient(iss=ISS, jwks_url=url)
    with respx.mock(assert_all_called=True) as router:
        route = router.get(url).mock(
            side_effect=[
                httpx.Response(200, json={"keys": [RS_JWK]}),
                httpx.Response(200, json={"keys": [RS_JWK, ES_JWK]}),
            ]
        )
        async with httpx.AsyncClient() as http:
            cache = KeyCache(http)
            verifier = JwtVerifier([client], cache)
            audience = BASE + f"/cds-services/{SIGN}"
            await verifier.verify(f"Bearer {token(key=RS_KEY, alg='RS384', kid='rs-1')}", audience)
            cache._fetched[url] = 0.0  # the refresh interval has passed
            await verifier.verify(f"Bearer {token()}", audience)  # es-1 is new: fetched again
    assert route.call_count == 2


def test_untrusted_client_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="asymmetric"):
        TrustedClient(iss=ISS, jwks={"keys": []}, algorithms=["HS256"])
    with pytest.raises(ValueError, match="needs jwks"):
        TrustedClient(iss=ISS)


def test_jti_replay_is_refused_across_two_server_processes(tmp_path: Path, knowledge: Any) -> None:
    """Two replicas on one audit database: a token used on one is refused by the other."""
    env = {
        **os.environ,
        "CDS_DATA_DIR": str(tmp_path),
        "CDS_AUTH_REQUIRED": "true",
        "CDS_PUBLIC_BASE_URL": BASE,
        "CDS_TRUSTED_CLIENTS": json.dumps([{"iss": ISS, "jwks": {"keys": [ES_JWK]}}]),
        "CDS_LOG_LEVEL": "warning",
    }
    ports = [free_port(), free_port()]
    servers = [
        subprocess.Popen(
            [sys.executable, "-m", "cds_service", "serve", "--port", str(p)],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for p in ports
    ]
    try:
        for port in ports:
            deadline = time.monotonic() + 20
            while True:
                try:
                    httpx.get(f"http://127.0.0.1:{port}/version", timeout=1)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
        bearer = token()
        body = hook_request(knowledge, "partner-missing")
        first = httpx.post(
            f"http://127.0.0.1:{ports[0]}/cds-services/{SIGN}", json=body, headers={"Authorization": f"Bearer {bearer}"}
        )
        second = httpx.post(
            f"http://127.0.0.1:{ports[1]}/cds-services/{SIGN}", json=body, headers={"Authorization": f"Bearer {bearer}"}
        )
        assert (first.status_code, second.status_code) == (200, 401)
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=10)


def test_health_needs_no_token_and_readiness_checks_the_audit_store(secured: TestClient) -> None:
    assert secured.get("/healthz").json() == {"status": "ok"}
    ready = secured.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["auditDatabase"] is True


def test_start_up_says_when_authentication_is_off(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(data_dir=tmp_path, cards_dir=REPO / "cards", auth_required=False)
    with caplog.at_level("WARNING", logger="cds_service.app"), TestClient(create_app(settings)):
        pass
    assert "authentication is OFF" in caplog.text
