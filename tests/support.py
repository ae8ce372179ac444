"""Helpers the tests share: scenario loading, request building, schema validation."""

from __future__ import annotations

import copy
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import uvicorn

from cds_service.knowledge import Knowledge
from cds_service.scenarios import load_manifest, request_from_record

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fhir_fixtures"
SCHEMA_PATH = Path(__file__).resolve().parent / "data" / "cds-hooks-2.0.derived.schema.json"
REFERENCE_TIME = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
SIGN = "palbociclib-order-sign"
SELECT = "palbociclib-order-select"


@cache
def _schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    return loaded


def assert_valid(instance: Any, definition: str) -> None:
    """Validate against one ``$defs`` entry of the derived CDS Hooks 2.0 schema."""
    schema = {"$ref": f"#/$defs/{definition}", "$defs": _schema()["$defs"]}
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(instance)


def manifest() -> dict[str, Any]:
    return load_manifest(FIXTURES)


def scenario_names() -> list[str]:
    return [s["name"] for s in manifest()["scenarios"]]


def scenario(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return loaded


def hook_request(
    knowledge: Knowledge,
    name: str,
    service_id: str = SIGN,
    *,
    with_prefetch: bool = True,
    drop: tuple[str, ...] = (),
    null: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The request an EHR would send for a scenario: full prefetch, minus ``drop`` keys, ``null`` ones nulled."""
    request = request_from_record(
        scenario(name), knowledge.registry[service_id], with_prefetch=with_prefetch, hook_instance=f"test-{name}"
    )
    for key in drop:
        request["prefetch"].pop(key)
    for key in null:
        request["prefetch"][key] = None
    return copy.deepcopy(request)


def rule_ids(response: dict[str, Any], *, at_least: str = "info") -> set[tuple[str, str]]:
    order = {"info": 0, "warning": 1, "critical": 2}
    return {
        (c["source"]["topic"]["code"], c["indicator"])
        for c in response["cards"]
        if order[c["indicator"]] >= order[at_least]
    }


def fhir_routes(
    router: Any, knowledge: Knowledge, name: str, base: str, *, token: str | None = "secret-token"
) -> dict[str, Any]:
    """One respx route per prefetch key, answering from the scenario's record as a FHIR server would,
    and checking the Bearer token on every request."""
    import httpx

    from cds_service.fhir.local import LocalFhirStore
    from cds_service.prefetch.templates import render, token_values
    from cds_service.scenarios import build_context, split_record

    patient, drafts, record = split_record(scenario(name))
    assert patient is not None
    store = LocalFhirStore(record)
    context = build_context(str(patient["id"]), drafts, "order-sign")
    routes = {}
    for spec in knowledge.registry[SIGN].prefetch:
        query = render(spec.template, token_values(context))
        assert query is not None
        answer = store.query(query)
        path, _, params = query.partition("?")

        def respond(request: httpx.Request, answer: Any = answer) -> httpx.Response:
            expected = f"Bearer {token}" if token else None
            if request.headers.get("Authorization") != expected:
                return httpx.Response(401, json={"resourceType": "OperationOutcome", "issue": []})
            if answer is None:
                return httpx.Response(404, json={"resourceType": "OperationOutcome", "issue": []})
            return httpx.Response(200, json=answer)

        from urllib.parse import parse_qsl

        routes[spec.key] = router.get(f"{base}/{path}", params=dict(parse_qsl(params))).mock(side_effect=respond)
    return routes


def fallback_request(
    knowledge: Knowledge, name: str, base: str, *, token: str | None = "secret-token", keep: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A request that sends no prefetch (or only ``keep`` keys) and names the FHIR server instead."""
    request = hook_request(knowledge, name)
    request["prefetch"] = {k: v for k, v in request["prefetch"].items() if k in keep}
    if not request["prefetch"]:
        del request["prefetch"]
    request["fhirServer"] = base
    if token:
        request["fhirAuthorization"] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "cds-service",
        }
    return request


def reset_postgres(url: str) -> None:
    """Drop the audit tables so a PostgreSQL test starts from an empty, freshly migrated store."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as connection:
        for table in (
            "seen_jti",
            "feedback_index",
            "card_index",
            "chain_anchor",
            "chain_head",
            "audit_record",
            "alembic_version",
            "feedback",
            "card",
        ):
            connection.execute(text(f"DROP TABLE IF EXISTS {table} CASCADE"))
    engine.dispose()


def free_port() -> int:
    """A loopback port nothing listens on now, for a server a test starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _ThreadServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # running in a thread
        pass


@contextmanager
def uvicorn_in_thread(app: Any, *, start_timeout: float = 10.0, **config: Any) -> Iterator[str]:
    """``app`` (an ASGI app or its import string) served by uvicorn in a thread on a free port; yields its URL."""
    port = free_port()
    server = _ThreadServer(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped while starting (does the app load?)"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def start_serve(
    port: int, env: dict[str, str], *, workers: int = 2, ready_path: str = "/healthz"
) -> subprocess.Popen[bytes]:
    """``python -m cds_service serve`` in its own process group (stop it with ``os.killpg``), once
    ``ready_path`` answers 200; ``env`` is added to this process's environment."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cds_service", "serve", "--port", str(port), "--workers", str(workers)],
        cwd=REPO,
        env={**os.environ, "CDS_LOG_LEVEL": "warning", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}{ready_path}", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    raise AssertionError("server did not start")
