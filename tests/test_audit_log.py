"""The audit log, on SQLite and on PostgreSQL: what each hook call records, feedback joined to its card,
tamper evidence, retention, and the spool when the database is unreachable."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from fastapi.testclient import TestClient
from sqlalchemy import event, text

from cds_service.app import create_app
from cds_service.audit.records import InvocationRecord
from cds_service.audit.store import SqlAuditStore
from cds_service.knowledge import Knowledge
from cds_service.settings import Settings
from tests.conftest import fixed_clock
from tests.support import REPO, SIGN, fallback_request, fhir_routes, hook_request, reset_postgres

BASE = "https://ehr.example.org/fhir"
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def audit_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    url = os.environ.get("CDS_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("CDS_TEST_POSTGRES_URL is not set")
    reset_postgres(url)
    return url


@pytest.fixture
def app_client(audit_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(audit_db_url=audit_url, data_dir=tmp_path / "data", cards_dir=REPO / "cards")
    with TestClient(create_app(settings, clock=fixed_clock), raise_server_exceptions=False) as client:
        yield client


def _store(client: TestClient) -> SqlAuditStore:
    store: SqlAuditStore = client.app.state.runtime.audit  # type: ignore[attr-defined]
    return store


def _invocations(client: TestClient) -> list[dict[str, Any]]:
    return _store(client).records("invocation")


def test_full_prefetch_call_records_every_field(app_client: TestClient, knowledge: Knowledge) -> None:
    request = hook_request(knowledge, "partner-missing")
    request["context"]["encounterId"] = "enc-9"
    request["fhirAuthorization"] = {
        "access_token": "never-stored",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "cds",
    }
    request["fhirServer"] = BASE
    body = app_client.post(f"/cds-services/{SIGN}", json=request).json()
    [record] = _invocations(app_client)
    assert record["hookInstance"] == request["hookInstance"]
    assert record["hook"] == "order-sign"
    assert record["serviceId"] == SIGN
    assert record["httpStatus"] == 200
    assert record["receivedAt"]
    assert record["respondedAt"]
    assert record["latencyMs"] is not None
    assert record["userId"] == request["context"]["userId"]
    assert record["patientId"] == request["context"]["patientId"]
    assert record["encounterId"] == "enc-9"
    draft = request["context"]["draftOrders"]["entry"][0]["resource"]
    assert record["draftOrders"][0]["reference"] == f"MedicationRequest/{draft['id']}"
    assert record["draftOrders"][0]["codes"][0]["code"] == draft["medicationCodeableConcept"]["coding"][0]["code"]
    assert record["palbociclibOrders"] == [f"MedicationRequest/{draft['id']}"]
    assert record["prefetch"]["medicationRequests"] == {"state": "prefetched", "reason": None}
    assert record["knowledgeVersion"] == knowledge.version
    assert record["fhirQueries"] == []
    [card] = [c for c in record["cards"] if c["ruleId"] == "partner-missing"]
    issued = next(c for c in body["cards"] if c["uuid"] == card["uuid"])
    assert card["indicator"] == issued["indicator"]
    assert card["summary"] == issued["summary"]
    assert card["detail"] == issued["detail"]
    assert [s["uuid"] for s in card["suggestions"]] == [s["uuid"] for s in issued["suggestions"]]
    assert record["caller"] is None
    assert record["error"] is None
    stored_text = str(_store(app_client).records())
    assert "never-stored" not in stored_text
    assert '"prefetch": {"' not in stored_text  # no raw prefetch bodies


class _KeepingStore(SqlAuditStore):
    """Keeps each submitted record, as the writer's queue does until the record is committed."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.submitted: list[InvocationRecord] = []

    def submit_invocation(self, record: InvocationRecord) -> Any:
        self.submitted.append(record)
        return super().submit_invocation(record)


def _resources_in(value: Any, found: list[str]) -> list[str]:
    """Every FHIR resource (a JSON object with a ``resourceType``) that ``value`` holds, at any depth."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            _resources_in(getattr(value, item.name), found)
    elif isinstance(value, Mapping):
        if isinstance(value.get("resourceType"), str):
            found.append(value["resourceType"])
        for item in value.values():
            _resources_in(item, found)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _resources_in(item, found)
    return found


def test_the_record_of_a_call_holds_no_patient_resources(tmp_path: Path, knowledge: Knowledge) -> None:
    """A call's record waits in memory until it is committed: it holds how each prefetch key was obtained, not
    the patient's resources, so the parsed request is freed as soon as the cards are made."""
    store = _KeepingStore(f"sqlite:///{tmp_path / 'audit.sqlite3'}")
    settings = Settings(data_dir=tmp_path / "data", cards_dir=REPO / "cards")
    request = hook_request(knowledge, "realistic-full-record")
    with TestClient(create_app(settings, clock=fixed_clock, audit=store), raise_server_exceptions=False) as client:
        assert client.post(f"/cds-services/{SIGN}", json=request).status_code == 200
    [record] = store.submitted
    assert set(record.prefetch) == set(request["prefetch"])
    assert {outcome.state for outcome in record.prefetch.values()} == {"prefetched"}
    assert _resources_in(record, []) == []
    assert _resources_in(request["prefetch"], []).count("Observation") >= 60  # what the walk would have found


def test_card_evidence_is_recorded(app_client: TestClient, knowledge: Knowledge) -> None:
    app_client.post(f"/cds-services/{SIGN}", json=hook_request(knowledge, "receptor-her2-positive-icd"))
    [record] = _invocations(app_client)
    card = next(c for c in record["cards"] if c["ruleId"] == "receptor-her2-positive")
    assert card["evidence"]
    assert card["evidence"][0]["reference"].startswith("Condition/")
    assert "Z17.31" in card["evidence"][0]["description"]


def test_fallback_and_degraded_calls_record_queries(app_client: TestClient, knowledge: Knowledge) -> None:
    with respx.mock(assert_all_called=False) as router:
        routes = fhir_routes(router, knowledge, "clean-base-order", BASE)
        routes["conditions"].mock(return_value=httpx.Response(503))
        app_client.post(f"/cds-services/{SIGN}", json=fallback_request(knowledge, "clean-base-order", BASE))
    [record] = _invocations(app_client)
    assert record["httpStatus"] == 200
    assert record["prefetch"]["patient"]["state"] == "fetched"
    assert record["prefetch"]["conditions"] == {"state": "failed", "reason": "HTTP 503"}
    failed = [q for q in record["fhirQueries"] if q["key"] == "conditions"]
    assert failed[0]["status"] == 503
    assert failed[0]["outcome"] == "http-error"
    assert "?" not in failed[0]["url"]  # the query string names the patient: kept out of the URL column
    assert "receptor-status" in record["skippedChecks"]
    assert any(c["ruleId"] == "data-unavailable" for c in record["cards"])


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        (lambda r: r.pop("hookInstance"), 400),
        (lambda r: r.update(hook="patient-view"), 400),
        (lambda r: r.pop("prefetch"), 412),
    ],
    ids=["no-hook-instance", "wrong-hook", "nothing-obtainable"],
)
def test_refused_calls_are_recorded(app_client: TestClient, knowledge: Knowledge, mutate: Any, status: int) -> None:
    request = hook_request(knowledge, "clean-base-order")
    mutate(request)
    assert app_client.post(f"/cds-services/{SIGN}", json=request).status_code == status
    [record] = _invocations(app_client)
    assert record["httpStatus"] == status
    assert record["error"]["message"]
    assert record["patientId"] == request["context"]["patientId"]
    assert record["cards"] == []


def test_unknown_service_and_malformed_json_are_recorded(app_client: TestClient) -> None:
    app_client.post("/cds-services/nope", json={})
    app_client.post(f"/cds-services/{SIGN}", content=b"{", headers={"Content-Type": "application/json"})
    records = _invocations(app_client)
    assert [(r["serviceId"], r["httpStatus"]) for r in records] == [("nope", 404), (SIGN, 400)]


def test_feedback_joins_its_card_and_keeps_history(app_client: TestClient, knowledge: Knowledge) -> None:
    body = app_client.post(f"/cds-services/{SIGN}", json=hook_request(knowledge, "partner-missing")).json()
    card = body["cards"][0]
    url = f"/cds-services/{SIGN}/feedback"
    overridden = {
        "card": card["uuid"],
        "outcome": "overridden",
        "outcomeTimestamp": "2026-11-20T15:02:00Z",
        "overrideReason": {"reason": card["overrideReasons"][0], "userComment": "given elsewhere"},
    }
    accepted = {
        "card": card["uuid"],
        "outcome": "accepted",
        "outcomeTimestamp": "2026-11-20T15:03:00Z",
        "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
    }
    assert app_client.post(url, json={"feedback": [overridden]}).json()["stored"] == 1
    assert app_client.post(url, json={"feedback": [overridden]}).json()["duplicates"] == 1
    assert app_client.post(url, json={"feedback": [accepted]}).json()["stored"] == 1
    history = _store(app_client).feedback_for(card["uuid"])
    assert [h["feedback"]["outcome"] for h in history] == ["overridden", "accepted"]
    assert _store(app_client).verify().ok


def _tamper(store: SqlAuditStore, statement: str, **params: Any) -> None:
    with store.engine.begin() as connection:
        connection.execute(text(statement), params)


def _filled_store(url: str, tmp_path: Path, count: int = 6) -> SqlAuditStore:
    store = SqlAuditStore(url, tmp_path / "spool.jsonl")
    for index in range(count):
        store.record_invocation(
            InvocationRecord(
                service_id=SIGN,
                received_at=datetime.now(UTC),
                hook_instance=f"h-{index}",
                patient_id=f"p-{index}",
                http_status=200,
            )
        )
    assert store.verify().ok
    return store


def test_edited_record_is_named(audit_url: str, tmp_path: Path) -> None:
    store = _filled_store(audit_url, tmp_path)
    with store.engine.connect() as connection:
        row = connection.execute(text("SELECT content FROM audit_record WHERE seq = 3")).one()
    _tamper(store, "UPDATE audit_record SET content = :c WHERE seq = 3", c=row.content.replace('"p-2"', '"p-X"'))
    result = store.verify()
    assert not result.ok
    assert result.first_bad_seq == 3
    assert "altered" in (result.problem or "")
    store.close()


def test_deleted_record_is_named(audit_url: str, tmp_path: Path) -> None:
    store = _filled_store(audit_url, tmp_path)
    _tamper(store, "DELETE FROM audit_record WHERE seq = 4")
    result = store.verify()
    assert (result.ok, result.first_bad_seq) == (False, 4)
    assert "missing" in (result.problem or "")
    store.close()


def test_a_record_appended_while_verifying_is_no_false_alarm(audit_url: str, tmp_path: Path) -> None:
    """A worker appends between verify's read of the chain head and its read of the records: a sound log
    must still verify (verify reads one snapshot)."""
    store = _filled_store(audit_url, tmp_path)
    verifier = threading.get_ident()
    appended: list[bool] = []

    def append_once(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if threading.get_ident() == verifier and not appended and "FROM audit_record" in statement:
            appended.append(True)
            store.record_invocation(
                InvocationRecord(service_id=SIGN, received_at=datetime.now(UTC), hook_instance="during-verify")
            )

    event.listen(store.engine, "before_cursor_execute", append_once)
    try:
        result = store.verify()
    finally:
        event.remove(store.engine, "before_cursor_execute", append_once)
    assert appended, "the append did not happen during verify"
    assert result.ok, result.problem
    assert result.records == 6
    assert store.verify().records == 7
    store.close()


def test_swapped_records_are_named(audit_url: str, tmp_path: Path) -> None:
    store = _filled_store(audit_url, tmp_path)
    with store.engine.begin() as connection:
        rows = {r.seq: r for r in connection.execute(text("SELECT * FROM audit_record WHERE seq IN (2, 5)"))}
        for seq, other in ((2, 5), (5, 2)):
            source = rows[other]
            connection.execute(
                text(
                    "UPDATE audit_record SET content = :content, content_digest = :cd, "
                    "prev_digest = :pd, chain_digest = :ch, hook_instance = :hi, "
                    "patient_id = :pi, record_id = :ri WHERE seq = :seq"
                ),
                {
                    "content": source.content,
                    "cd": source.content_digest,
                    "pd": source.prev_digest,
                    "ch": source.chain_digest,
                    "hi": source.hook_instance,
                    "pi": source.patient_id,
                    "ri": f"swap-{seq}",
                    "seq": seq,
                },
            )
    result = store.verify()
    assert (result.ok, result.first_bad_seq) == (False, 2)
    assert "does not follow" in (result.problem or "")
    store.close()


def test_removed_tail_is_detected(audit_url: str, tmp_path: Path) -> None:
    store = _filled_store(audit_url, tmp_path)
    _tamper(store, "DELETE FROM audit_record WHERE seq = 6")
    result = store.verify()
    assert (result.ok, result.first_bad_seq) == (False, 6)
    store.close()


def test_index_column_edit_is_detected(audit_url: str, tmp_path: Path) -> None:
    store = _filled_store(audit_url, tmp_path)
    _tamper(store, "UPDATE audit_record SET patient_id = 'someone-else' WHERE seq = 2")
    result = store.verify()
    assert (result.ok, result.first_bad_seq) == (False, 2)
    store.close()


def test_purge_keeps_the_rest_verifiable(audit_url: str, tmp_path: Path) -> None:
    store = _filled_store(audit_url, tmp_path)
    cutoff = datetime.now(UTC) + timedelta(seconds=1)
    with store.engine.begin() as connection:  # make seq 1-3 old
        connection.execute(
            text("UPDATE audit_record SET recorded_at = :old WHERE seq <= 3"), {"old": datetime(2020, 1, 1, tzinfo=UTC)}
        )
    assert store.purge(datetime(2021, 1, 1, tzinfo=UTC)) == 3
    result = store.verify()
    assert result.ok, result.problem
    assert result.records == 4  # three kept plus the purge's own record
    assert [r["kind"] for r in store.records()][-1] == "purge"
    assert cutoff > datetime(2021, 1, 1, tzinfo=UTC)
    store.close()


def test_unreachable_database_spools_and_replays_in_order(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    store = SqlAuditStore(url, tmp_path / "spool.jsonl", busy_timeout_ms=100)

    def call(index: int) -> None:
        store.record_invocation(
            InvocationRecord(
                service_id=SIGN, received_at=datetime.now(UTC), hook_instance=f"h-{index}", http_status=200
            )
        )

    call(0)
    blocker = sqlite3.connect(tmp_path / "audit.sqlite3", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    call(1)
    call(2)
    assert store.spool.depth() == 2
    blocker.execute("ROLLBACK")
    blocker.close()
    call(3)
    assert store.spool.depth() == 0
    assert [r["hookInstance"] for r in store.records("invocation")] == ["h-0", "h-1", "h-2", "h-3"]
    assert store.verify().ok
    store.close()


def test_cards_are_still_served_while_the_database_is_down(tmp_path: Path, knowledge: Knowledge) -> None:
    data = tmp_path / "data"
    settings = Settings(data_dir=data, cards_dir=REPO / "cards")
    store = SqlAuditStore(settings.audit_url, settings.audit_spool, busy_timeout_ms=100)
    with TestClient(create_app(settings, clock=fixed_clock, audit=store)) as client:
        blocker = sqlite3.connect(data / "cds-audit.sqlite3", isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        response = client.post(f"/cds-services/{SIGN}", json=hook_request(knowledge, "partner-missing"))
        assert response.status_code == 200
        assert response.json()["cards"]
        assert store.spool.depth() == 1
        blocker.execute("ROLLBACK")
        blocker.close()
        client.post(f"/cds-services/{SIGN}", json=hook_request(knowledge, "clean-base-order"))
    assert store.spool.depth() == 0
    assert len(store.records("invocation")) == 2
    assert store.verify().ok
    store.close()


def test_audit_verify_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cds_service.__main__ import main

    monkeypatch.setenv("CDS_DATA_DIR", str(tmp_path))
    store = _filled_store(f"sqlite:///{tmp_path / 'cds-audit.sqlite3'}", tmp_path)
    assert main(["audit", "verify"]) == 0
    assert "verified: 6 records, chain intact" in capsys.readouterr().out
    _tamper(store, "DELETE FROM audit_record WHERE seq = 2")
    store.close()
    assert main(["audit", "verify"]) == 1
    assert "record 2 is missing" in capsys.readouterr().out
    assert main(["audit", "purge", "--before", "2000-01-01"]) == 0
    assert "purged 0 records" in capsys.readouterr().out
