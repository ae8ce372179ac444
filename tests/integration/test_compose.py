"""``compose.yaml`` without Docker (the CI machines have none): it is valid against the Compose JSON schema, its
images are pinned, its health checks and dependencies are wired, and its environment, after Compose's variable
substitution, is a valid service configuration: with no ``.env``, and with the ``.env`` that the two snippets of
docs/hapi-sandbox.md write (the simulator's trusted key and an auditor)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jsonschema
import pytest
import yaml

from cds_service.cli import send_hook
from cds_service.security.jwt_auth import JwtVerifier
from cds_service.security.keys import KeyCache
from cds_service.settings import Settings
from tests.support import REPO

HERE = Path(__file__).resolve().parent
SCHEMA = HERE / "data" / "compose-spec.schema.json"
SHARED = REPO.parent / "shared"
COMPOSE = REPO / "compose.yaml"
GUIDE = REPO / "docs" / "hapi-sandbox.md"
SANDBOX_ISS = "https://sandbox.cds-hooks.org"
SANDBOX_KID = "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f"


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


# Compose variable substitution (compose-spec interpolation.md): $$, $VAR, ${VAR}, ${VAR:-d}, ${VAR-d},
# ${VAR:+r}, ${VAR+r}. Nested forms are not used in compose.yaml.
_VARIABLE = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-+?])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


def interpolate(text: str, env: dict[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match["name"] or match["bare"]
        value, op, arg = env.get(name), match["op"], match["arg"] or ""
        if op is None:
            return value or ""
        if op == ":-":
            return value or arg
        if op == "-":
            return arg if value is None else value
        if op == ":+":
            return arg if value else ""
        if op == "+":
            return "" if value is None else arg
        raise AssertionError(f"${{{name}{op}...}} (required variables) are not used in compose.yaml")

    return _VARIABLE.sub(substitute, text)


def read_dotenv(path: Path) -> dict[str, str]:
    """Compose's .env: KEY=value, single quotes literal, double quotes with escapes."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, value = line.partition("=")
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        elif len(value) >= 2 and value[0] == value[-1] == '"':
            value = json.loads(value)
        values[name.strip()] = value
    return values


def service_settings(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings the ``cds`` container would start with, given the variables Compose substitutes."""
    for name in list(os.environ):
        if name.startswith("CDS_"):
            monkeypatch.delenv(name)
    for name, value in compose()["services"]["cds"]["environment"].items():
        monkeypatch.setenv(name, interpolate(str(value), env))
    return Settings()


def test_compose_file_is_valid_against_the_compose_schema() -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose()), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_schema_copy_matches_the_shared_original() -> None:
    original = SHARED / "compose-spec.schema.json"
    if not original.exists():
        pytest.skip("shared/ is not beside the repository")
    assert json.loads(SCHEMA.read_text()) == json.loads(original.read_text())


def test_images_are_pinned_and_the_service_is_built_here() -> None:
    services = compose()["services"]
    assert set(services) == {"hapi", "postgres", "cds"}
    for name, service in services.items():
        if "build" in service:
            assert (REPO / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
            continue
        image, _, tag = service["image"].rpartition(":")
        assert image, f"{name}: no tag"
        assert tag not in ("", "latest"), f"{name}: pin the image, not {tag or 'no tag'}"
    assert services["hapi"]["image"].startswith("hapiproject/hapi:v")
    assert services["hapi"]["environment"]["hapi.fhir.fhir_version"] == "R4"


def test_health_checks_and_start_order() -> None:
    services = compose()["services"]
    cds = services["cds"]
    assert any("/healthz" in part for part in cds["healthcheck"]["test"])
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert cds["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert cds["depends_on"]["hapi"] == {"condition": "service_started"}  # distroless HAPI: nothing to probe with
    assert "healthcheck" not in services["hapi"]


def test_environment_is_a_valid_service_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = service_settings({}, monkeypatch)
    services = compose()["services"]
    assert settings.auth_required is True
    assert settings.cors_origins == [SANDBOX_ISS]
    assert settings.fhir_allow_http is True
    assert settings.auditors == {}
    assert [c.iss for c in settings.trusted_clients] == [SANDBOX_ISS]
    sandbox = settings.trusted_clients[0]
    assert sandbox.algorithms == ["ES384"]
    assert sandbox.jku_allowlist == [f"{SANDBOX_ISS}/.well-known/jwks.json"]
    assert sandbox.jwks is not None
    assert [k["kid"] for k in sandbox.jwks["keys"]] == [SANDBOX_KID]
    shared_jwks = SHARED / "cds-hooks-spec" / "sandbox-jwks.json"
    if shared_jwks.exists():
        assert sandbox.jwks == json.loads(shared_jwks.read_text())
    # the public URL is where the service is published
    published = {p.split(":")[0] for p in services["cds"]["ports"]}
    assert settings.public_base_url is not None
    assert urlsplit(settings.public_base_url).port in {int(p) for p in published}
    # the audit store is the postgres service, with its credentials
    url = urlsplit(settings.audit_url)
    database = services["postgres"]["environment"]
    assert url.scheme == "postgresql+psycopg"
    assert (url.hostname, url.port, url.path.lstrip("/")) == ("postgres", 5432, database["POSTGRES_DB"])
    assert (url.username, url.password) == (database["POSTGRES_USER"], database["POSTGRES_PASSWORD"])


def _snippet(start: str, end: str) -> str:
    text = GUIDE.read_text()
    begin = text.index(start)
    return text[begin : text.index(end, begin)]


def test_the_guides_env_snippets_give_a_trusted_simulator_and_an_auditor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_code = _snippet("# simulator key:", "\nEOF\n")
    made = subprocess.run([sys.executable, "-c", key_code], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stderr
    auditor_shell = _snippet("# auditor account:", "docker compose up").replace(".venv/bin/python", sys.executable)
    assert "hash-password" in auditor_shell
    hashed = subprocess.run(
        ["bash", "-c", f"set -euo pipefail\n{auditor_shell}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert hashed.returncode == 0, hashed.stderr
    env = read_dotenv(tmp_path / ".env")
    assert set(env) == {"SIMULATOR_TRUSTED_CLIENT", "AUDITOR_HASHES"}
    settings = service_settings(env, monkeypatch)
    assert [c.iss for c in settings.trusted_clients] == [SANDBOX_ISS, "https://simulator.local"]
    assert list(settings.auditors) == ["auditor"]

    # The simulator's key, as send-hook uses it, is accepted by the service's verifier with these settings.
    signing = send_hook.load_signing_key(tmp_path / "simulator-key.json")
    assert settings.public_base_url is not None
    aud = f"{settings.public_base_url}/cds-services"
    token = send_hook.client_jwt(signing, "https://simulator.local", aud)

    async def verify() -> str:
        async with httpx.AsyncClient() as http:
            caller = await JwtVerifier(settings.trusted_clients, KeyCache(http)).verify(f"Bearer {token}", aud)
            return caller.iss

    assert asyncio.run(verify()) == "https://simulator.local"
