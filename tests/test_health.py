"""Liveness and readiness for orchestrators."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient


def test_ready_while_the_database_or_the_spool_can_take_records(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = client.app.state.runtime.audit  # type: ignore[attr-defined]
    assert client.get("/readyz").json()["status"] == "ready"
    monkeypatch.setattr(store, "reachable", lambda: False)
    spool_only = client.get("/readyz")
    assert spool_only.status_code == 200
    assert spool_only.json() == {
        "status": "ready",
        "auditDatabase": False,
        "auditSpool": True,
        "spoolDepth": 0,
        "auditBacklog": 0,
    }
    monkeypatch.setattr(store.spool, "path", Path("/nonexistent-cds-dir/spool.jsonl"))
    neither = client.get("/readyz")
    assert neither.status_code == 503
    assert neither.json()["status"] == "not ready"
    assert client.get("/healthz").status_code == 200  # alive, just not ready
