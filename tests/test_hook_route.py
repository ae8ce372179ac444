"""The hook call's short way (``cds_service.api.hook_route``): past FastAPI's routing, with the same answers."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from cds_service import pipeline
from cds_service.api.hook_route import HOOK_PATH, CdsApp
from cds_service.app import create_app
from cds_service.knowledge import Knowledge
from cds_service.settings import Settings
from tests.conftest import fixed_clock
from tests.support import REPO, SIGN, hook_request


class CountingStack:
    """FastAPI's middleware stack, counting the requests that reach it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
        await self.app(scope, receive, send)


def _app(tmp_path: Path, name: str, **overrides: Any) -> CdsApp:
    counter = itertools.count()
    settings = Settings(data_dir=tmp_path / name, cards_dir=REPO / "cards", **overrides)
    app = create_app(settings, clock=fixed_clock, new_uuid=lambda: f"00000000-0000-4000-8000-{next(counter):012d}")
    assert isinstance(app, CdsApp)
    return app


@pytest.fixture
def counted(tmp_path: Path) -> Iterator[tuple[TestClient, CountingStack]]:
    app = _app(tmp_path, "counted", cors_origins=["https://sandbox.cds-hooks.org"])
    with TestClient(app, raise_server_exceptions=False) as client:
        assert app.middleware_stack is not None  # built by the lifespan
        stack = CountingStack(app.middleware_stack)
        app.middleware_stack = stack
        yield client, stack


def test_hook_call_does_not_go_through_fastapi_routing(
    counted: tuple[TestClient, CountingStack], knowledge: Knowledge
) -> None:
    client, stack = counted
    response = client.post(f"/cds-services/{SIGN}", json=hook_request(knowledge, "clean-base-order"))
    assert response.status_code == 200, response.text
    assert stack.paths == []
    assert response.headers["X-Knowledge-Version"] == knowledge.version
    assert response.headers["X-Request-ID"]
    # Everything else still goes through FastAPI: discovery, feedback, a trailing slash, other methods.
    client.get("/cds-services")
    client.post(f"/cds-services/{SIGN}/feedback", json={"feedback": []})
    client.post(f"/cds-services/{SIGN}/", json={})
    client.options(
        f"/cds-services/{SIGN}",
        headers={"Origin": "https://sandbox.cds-hooks.org", "Access-Control-Request-Method": "POST"},
    )
    assert stack.paths == [
        "/cds-services",
        f"/cds-services/{SIGN}/feedback",
        f"/cds-services/{SIGN}/",
        f"/cds-services/{SIGN}",
    ]


def test_hook_call_keeps_cors_and_the_request_id(
    counted: tuple[TestClient, CountingStack], knowledge: Knowledge
) -> None:
    client, stack = counted
    response = client.post(
        f"/cds-services/{SIGN}",
        json=hook_request(knowledge, "clean-base-order"),
        headers={"Origin": "https://sandbox.cds-hooks.org", "X-Request-ID": "req-42"},
    )
    assert response.status_code == 200
    assert stack.paths == []
    assert response.headers["Access-Control-Allow-Origin"] == "https://sandbox.cds-hooks.org"
    assert response.headers["X-Request-ID"] == "req-42"
    other = client.post(f"/cds-services/{SIGN}", json={}, headers={"Origin": "https://elsewhere.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def _requests(knowledge: Knowledge) -> list[tuple[str, dict[str, Any]]]:
    """(path, httpx keyword arguments) of hook calls that answer cards, and of each kind of refusal."""
    with_cards = hook_request(knowledge, "receptor-er-pr-negative-icd")
    return [
        (f"/cds-services/{SIGN}", {"json": hook_request(knowledge, "clean-base-order")}),
        (f"/cds-services/{SIGN}", {"json": with_cards}),
        ("/cds-services/no-such-service", {"json": with_cards}),
        (f"/cds-services/{SIGN}", {"content": b"{not json", "headers": {"Content-Type": "application/json"}}),
        (f"/cds-services/{SIGN}", {"content": b""}),
        (f"/cds-services/{SIGN}", {"json": {"hook": "order-sign"}}),
        (f"/cds-services/{SIGN}", {"content": b"[" * 100 + b"]" * 100}),
        (f"/cds-services/{SIGN}", {"content": b" " * 300_000}),
    ]


@pytest.mark.parametrize("auth_required", [False, True])
def test_short_way_and_fastapi_answer_alike(tmp_path: Path, knowledge: Knowledge, auth_required: bool) -> None:
    short = _app(tmp_path, "short", auth_required=auth_required, max_body_bytes=200_000)
    routed = _app(tmp_path, "routed", auth_required=auth_required, max_body_bytes=200_000)
    with (
        TestClient(short, raise_server_exceptions=False) as short_client,
        TestClient(routed, raise_server_exceptions=False) as routed_client,
    ):
        routed.hook_stack = None  # every call through FastAPI's routing, as before the short way
        answers = []
        for path, arguments in _requests(knowledge):
            one = short_client.post(path, **arguments)
            other = routed_client.post(path, **arguments)
            assert one.status_code == other.status_code, (path, one.text, other.text)
            assert one.content == other.content, path
            for header in ("content-type", "www-authenticate", "x-knowledge-version"):
                assert one.headers.get(header) == other.headers.get(header), (path, header)
            answers.append(one.status_code)
    expected = [401] * 8 if auth_required else [200, 200, 404, 400, 400, 400, 400, 413]
    assert answers == expected
    # Each call is in the audit log once, the same way either way (a refused call too).
    recorded = [
        [
            (r["httpStatus"], r["serviceId"], [c["ruleId"] for c in r["cards"]])
            for r in app.state.runtime.audit.records("invocation")
        ]
        for app in (short, routed)
    ]
    assert recorded[0] == recorded[1]
    assert [status for status, _, _ in recorded[0]] == expected


def test_unexpected_error_answers_500_and_reaches_the_server(
    tmp_path: Path, knowledge: Knowledge, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(**_: Any) -> None:
        raise RuntimeError("not from the request")

    monkeypatch.setattr(pipeline, "evaluate", broken)
    app = _app(tmp_path, "broken", auth_required=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post(f"/cds-services/{SIGN}", json=hook_request(knowledge, "clean-base-order"))
        assert response.status_code == 500
        assert response.json()["issue"][0]["diagnostics"] == "internal error"
        assert response.headers["X-Request-ID"]
    with TestClient(app) as raising, pytest.raises(RuntimeError, match="not from the request"):
        raising.post(f"/cds-services/{SIGN}", json=hook_request(knowledge, "clean-base-order"))


def test_a_root_path_leaves_the_call_to_fastapi(tmp_path: Path, knowledge: Knowledge) -> None:
    app = _app(tmp_path, "rooted", auth_required=False)
    with TestClient(app, root_path="/cds", raise_server_exceptions=False) as client:
        assert app.middleware_stack is not None
        stack = CountingStack(app.middleware_stack)
        app.middleware_stack = stack
        response = client.post(f"/cds/cds-services/{SIGN}", json=hook_request(knowledge, "clean-base-order"))
    assert response.status_code == 200, response.text
    assert stack.paths == [f"/cds/cds-services/{SIGN}"]


@pytest.mark.parametrize(
    ("path", "service"),
    [
        (f"/cds-services/{SIGN}", SIGN),
        ("/cds-services/a.b-c_d", "a.b-c_d"),
        ("/cds-services/", None),
        (f"/cds-services/{SIGN}/feedback", None),
        (f"/cds-services/{SIGN}/", None),
        (f"/x/cds-services/{SIGN}", None),
    ],
)
def test_hook_path(path: str, service: str | None) -> None:
    match = HOOK_PATH.match(path)
    assert (match.group(1) if match else None) == service
