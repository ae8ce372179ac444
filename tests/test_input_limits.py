"""Input beyond the limits gets a clear 4xx (413 for size), never a 500 or a memory blow-up, and is recorded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cds_service.knowledge import Knowledge
from tests.support import SIGN, hook_request


@pytest.fixture
def limited(make_client: Any) -> TestClient:
    client: TestClient = make_client(
        max_body_bytes=200_000, max_list_items=500, max_json_depth=40, max_string_length=50_000
    )
    return client


def _outcome(response: Any, status: int, needle: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert needle in json.dumps(body)


def test_body_over_the_size_limit_is_413(limited: TestClient, knowledge: Knowledge) -> None:
    request = hook_request(knowledge, "clean-base-order")
    request["extension"] = {"org.example.padding": {"text": "x" * 40_000, "more": ["y" * 40_000] * 5}}
    _outcome(limited.post(f"/cds-services/{SIGN}", json=request), 413, "exceeds the limit")


def test_body_streamed_without_a_length_is_cut_at_the_limit(limited: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"hook": "order-sign", "padding": "'
        for _ in range(100):
            yield b"z" * 10_000
        yield b'"}'

    _outcome(
        limited.post(f"/cds-services/{SIGN}", content=chunks(), headers={"Content-Type": "application/json"}),
        413,
        "exceeds the limit",
    )


def test_too_many_bundle_entries(limited: TestClient, knowledge: Knowledge) -> None:
    request = hook_request(knowledge, "clean-base-order")
    request["prefetch"]["conditions"]["entry"] = [{"resource": {"resourceType": "Condition"}}] * 501
    _outcome(limited.post(f"/cds-services/{SIGN}", json=request), 400, "at most 500")


def test_too_deep(limited: TestClient, knowledge: Knowledge) -> None:
    request = hook_request(knowledge, "clean-base-order")
    nested: dict[str, Any] = {}
    node = nested
    for _ in range(60):
        node["a"] = {}
        node = node["a"]
    request["extension"] = {"org.example.deep": nested}
    _outcome(limited.post(f"/cds-services/{SIGN}", json=request), 400, "nested deeper than 40")


def test_string_too_long(limited: TestClient, knowledge: Knowledge) -> None:
    request = hook_request(knowledge, "clean-base-order")
    request["hookInstance"] = "h" * 60_000
    _outcome(limited.post(f"/cds-services/{SIGN}", json=request), 400, "exceeds 50000")


def test_refusals_are_recorded(limited: TestClient, knowledge: Knowledge) -> None:
    request = hook_request(knowledge, "clean-base-order")
    request["prefetch"]["conditions"]["entry"] = [{"resource": {"resourceType": "Condition"}}] * 501
    limited.post(f"/cds-services/{SIGN}", json=request)
    [record] = limited.app.state.runtime.audit.records("invocation")  # type: ignore[attr-defined]
    assert record["httpStatus"] == 400
    assert "at most 500" in record["error"]["message"]


def test_within_the_limits_is_served(limited: TestClient, knowledge: Knowledge) -> None:
    response = limited.post(f"/cds-services/{SIGN}", json=hook_request(knowledge, "realistic-full-record"))
    assert response.status_code == 200
