"""A stalled audit store (here: another connection holding SQLite's write lock) must not hold the clinician's
order: after CDS_AUDIT_WAIT_SECONDS the call answers, its record stays queued and is committed once the store
is free; when too many records are queued, calls are refused (503) and /readyz fails until it catches up."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from cds_service.app import create_app
from cds_service.knowledge import Knowledge
from cds_service.settings import Settings
from tests.conftest import REPO, fixed_clock
from tests.support import SIGN, hook_request


@contextmanager
def write_lock(database: Path) -> Iterator[None]:
    holder = sqlite3.connect(database, timeout=0, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def _late() -> float:
    return REGISTRY.get_sample_value("cds_audit_late_records_total") or 0.0


def _instances(client: TestClient) -> list[str]:
    return [r["hookInstance"] for r in client.app.state.runtime.audit.records("invocation")]  # type: ignore[attr-defined]


def _wait_for(condition: object, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("not reached in time")


def test_a_stalled_store_delays_the_answer_only_by_the_wait_and_loses_nothing(
    tmp_path: Path, knowledge: Knowledge
) -> None:
    settings = Settings(data_dir=tmp_path / "data", cards_dir=REPO / "cards", audit_wait_seconds=0.3)
    with TestClient(create_app(settings, clock=fixed_clock)) as client:
        request = hook_request(knowledge, "partner-missing")
        late = _late()
        with write_lock(settings.data_dir / "cds-audit.sqlite3"):
            started = time.monotonic()
            answer = client.post(f"/cds-services/{SIGN}", json=request)
            waited = time.monotonic() - started
            assert answer.status_code == 200
            assert answer.json()["cards"]
            assert waited < 3.0  # the store's own busy timeout is 5 s: the call did not wait for it
            assert _late() == late + 1
            assert request["hookInstance"] not in _instances(client)
        _wait_for(lambda: request["hookInstance"] in _instances(client))
        assert client.app.state.runtime.audit.verify().ok  # type: ignore[attr-defined]


def test_a_full_backlog_refuses_calls_and_fails_readiness_until_it_drains(tmp_path: Path, knowledge: Knowledge) -> None:
    settings = Settings(
        data_dir=tmp_path / "data", cards_dir=REPO / "cards", audit_wait_seconds=0.05, max_audit_backlog=10
    )
    with TestClient(create_app(settings, clock=fixed_clock)) as client:
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        sent: list[str] = []
        with write_lock(settings.data_dir / "cds-audit.sqlite3"):
            statuses = []
            for _ in range(14):
                request = hook_request(knowledge, "clean-base-order")
                statuses.append(client.post(f"/cds-services/{SIGN}", json=request).status_code)
                sent.append(request["hookInstance"])
            assert 503 in statuses
            assert statuses[:10] == [200] * 10
            refused = client.post(f"/cds-services/{SIGN}", json=hook_request(knowledge, "clean-base-order"))
            assert refused.status_code == 503
            assert "audit log" in refused.json()["issue"][0]["diagnostics"]
            readiness = client.get("/readyz")
            assert readiness.status_code == 503
            assert readiness.json()["auditBacklog"] >= 10
        _wait_for(lambda: runtime.audit.backlog() == 0)
        assert client.get("/readyz").status_code == 200
        assert client.post(f"/cds-services/{SIGN}", json=hook_request(knowledge, "clean-base-order")).status_code == 200
        answered = [s for s, status in zip(sent, statuses, strict=True) if status == 200]
        _wait_for(lambda: set(answered) <= set(_instances(client)))
        assert runtime.audit.verify().ok
