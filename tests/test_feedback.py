"""POST /cds-services/{id}/feedback: the 2.0 body or a bare object, validated, idempotent, kept as history
and joined to the card it is about, on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cds_service.audit.store import SqlAuditStore
from cds_service.knowledge import Knowledge
from cds_service.schemas.feedback import FeedbackItem
from tests.support import SIGN, assert_valid, hook_request, reset_postgres


def _card(client: TestClient, knowledge: Knowledge) -> dict[str, Any]:
    body = client.post(f"/cds-services/{SIGN}", json=hook_request(knowledge, "partner-missing")).json()
    card: dict[str, Any] = next(c for c in body["cards"] if c["source"]["topic"]["code"] == "partner-missing")
    return card


def _accepted(card: dict[str, Any]) -> dict[str, Any]:
    return {
        "card": card["uuid"],
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
        "outcomeTimestamp": "2026-11-20T15:01:00Z",
    }


def _overridden(card: dict[str, Any]) -> dict[str, Any]:
    reason = card["overrideReasons"][0]
    return {
        "card": card["uuid"],
        "outcome": "overridden",
        "overrideReason": {
            "reason": {"code": reason["code"], "system": reason["system"]},
            "userComment": "Letrozole is given by the trial pharmacy.",
        },
        "outcomeTimestamp": "2026-11-20T15:02:00Z",
    }


def test_feedback_is_stored_and_joined_to_its_card(client: TestClient, knowledge: Knowledge) -> None:
    card = _card(client, knowledge)
    body = {"feedback": [_accepted(card)]}
    assert_valid(body, "FeedbackRequest")
    response = client.post(f"/cds-services/{SIGN}/feedback", json=body)
    assert response.status_code == 200
    assert response.json() == {"stored": 1, "duplicates": 0, "unknownCards": []}
    store = client.app.state.runtime.audit  # type: ignore[attr-defined]
    rows = store.feedback_for(card["uuid"])
    assert [r["feedback"]["outcome"] for r in rows] == ["accepted"]
    assert rows[0]["feedback"]["acceptedSuggestions"] == [{"id": card["suggestions"][0]["uuid"]}]
    assert rows[0]["serviceId"] == SIGN


def test_feedback_is_idempotent_and_keeps_history(client: TestClient, knowledge: Knowledge) -> None:
    card = _card(client, knowledge)
    url = f"/cds-services/{SIGN}/feedback"
    assert client.post(url, json={"feedback": [_overridden(card)]}).json()["stored"] == 1
    again = client.post(url, json={"feedback": [_overridden(card)]}).json()
    assert again == {"stored": 0, "duplicates": 1, "unknownCards": []}
    assert client.post(url, json={"feedback": [_accepted(card)]}).json()["stored"] == 1
    rows = client.app.state.runtime.audit.feedback_for(card["uuid"])  # type: ignore[attr-defined]
    assert [r["feedback"]["outcome"] for r in rows] == ["overridden", "accepted"]
    reason = rows[0]["feedback"]["overrideReason"]
    assert reason["userComment"] == "Letrozole is given by the trial pharmacy."
    assert reason["reason"]["code"] == card["overrideReasons"][0]["code"]


def test_bare_feedback_object_as_hapi_sends_it(client: TestClient, knowledge: Knowledge) -> None:
    card = _card(client, knowledge)
    response = client.post(f"/cds-services/{SIGN}/feedback", json=_overridden(card))
    assert response.json()["stored"] == 1


def test_sandbox_reason_without_system_is_accepted(client: TestClient, knowledge: Knowledge) -> None:
    card = _card(client, knowledge)
    item = _overridden(card)
    del item["overrideReason"]["reason"]["system"]
    assert client.post(f"/cds-services/{SIGN}/feedback", json={"feedback": [item]}).status_code == 200


def test_feedback_for_an_unknown_card_is_kept_and_named(client: TestClient) -> None:
    item = {"card": "not-issued-here", "outcome": "overridden", "outcomeTimestamp": "2026-11-20T15:02:00Z"}
    assert client.post(f"/cds-services/{SIGN}/feedback", json={"feedback": [item]}).json() == {
        "stored": 1,
        "duplicates": 0,
        "unknownCards": ["not-issued-here"],
    }


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"feedback": []}, "feedback"),
        (
            {"feedback": [{"card": "x", "outcome": "accepted", "outcomeTimestamp": "2026-11-20T15:00:00Z"}]},
            "acceptedSuggestions",
        ),
        ({"feedback": [{"card": "x", "outcome": "ignored", "outcomeTimestamp": "2026-11-20T15:00:00Z"}]}, "outcome"),
        ({"feedback": [{"card": "x", "outcome": "overridden"}]}, "outcomeTimestamp"),
        ({"feedback": [{"card": "x", "outcome": "overridden", "outcomeTimestamp": "yesterday"}]}, "outcomeTimestamp"),
        (
            {"feedback": [{"card": "x", "outcome": "overridden", "outcomeTimestamp": "2026-11-20T15:00:00"}]},
            "time zone",
        ),
        (
            {
                "feedback": [
                    {
                        "card": "x",
                        "outcome": "overridden",
                        "overrideReason": {},
                        "outcomeTimestamp": "2026-11-20T15:00:00Z",
                    }
                ]
            },
            "reason or a userComment",
        ),
        ({"something": "else"}, "feedback"),
    ],
    ids=[
        "empty",
        "accepted-without-suggestions",
        "bad-outcome",
        "no-timestamp",
        "bad-timestamp",
        "naive-timestamp",
        "empty-override",
        "not-feedback",
    ],
)
def test_invalid_feedback_is_400(client: TestClient, body: dict[str, Any], needle: str) -> None:
    response = client.post(f"/cds-services/{SIGN}/feedback", json=body)
    assert response.status_code == 400
    assert needle in response.text
    assert response.json()["resourceType"] == "OperationOutcome"


@pytest.fixture
def postgres_store(tmp_path: Path) -> Iterator[SqlAuditStore]:
    url = os.environ.get("CDS_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("CDS_TEST_POSTGRES_URL is not set")
    reset_postgres(url)
    store = SqlAuditStore(url, tmp_path / "spool.jsonl")
    yield store
    store.close()


def test_feedback_store_on_postgresql(postgres_store: SqlAuditStore) -> None:
    card = f"pg-card-{uuid.uuid4()}"
    item = FeedbackItem.model_validate(
        {
            "card": card,
            "outcome": "overridden",
            "overrideReason": {"userComment": "reviewed"},
            "outcomeTimestamp": datetime(2026, 11, 20, 15, tzinfo=UTC),
        }
    )
    first = postgres_store.record_feedback(SIGN, [item])
    second = postgres_store.record_feedback(SIGN, [item])
    assert (first.stored, second.duplicates) == (1, 1)
    rows = postgres_store.feedback_for(card)
    assert len(rows) == 1
    assert rows[0]["feedback"]["overrideReason"]["userComment"] == "reviewed"
    assert rows[0]["feedback"]["outcomeTimestamp"] == "2026-11-20T15:00:00Z"
    assert postgres_store.verify().ok
