"""The auditor API: its own authentication, filters and pagination, one invocation in full, counts per
rule, exports (NDJSON, CSV, FHIR AuditEvent Bundle checked with R4B), and every access recorded."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cds_service.app import create_app
from cds_service.audit.auditors import hash_password
from cds_service.fhir.models import validate_resource
from cds_service.knowledge import Knowledge
from cds_service.settings import Settings
from tests.conftest import fixed_clock
from tests.support import REPO, SIGN, hook_request, reset_postgres

AUDITOR = ("alice", "correct horse battery staple")


@pytest.fixture(params=["sqlite", "postgresql"])
def audited(request: pytest.FixtureRequest, tmp_path: Path, knowledge: Knowledge) -> Iterator[TestClient]:
    url = None
    if request.param == "postgresql":
        url = os.environ.get("CDS_TEST_POSTGRES_URL")
        if not url:
            pytest.skip("CDS_TEST_POSTGRES_URL is not set")
        reset_postgres(url)
    settings = Settings(
        data_dir=tmp_path,
        cards_dir=REPO / "cards",
        audit_cookie_secure=False,
        audit_db_url=url,
        auditors={AUDITOR[0]: hash_password(AUDITOR[1], iterations=1000)},
    )
    with TestClient(create_app(settings, clock=fixed_clock), raise_server_exceptions=False) as client:
        for name in ("partner-missing", "receptor-her2-positive-icd", "clean-base-order", "receptor-status-unknown"):
            client.post(f"/cds-services/{SIGN}", json=hook_request(knowledge, name))
        yield client


def _get(client: TestClient, url: str, **params: Any) -> Any:
    response = client.get(url, params=params, auth=AUDITOR)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize(
    "path", ["/audit/api/invocations", "/audit/api/summary", "/audit/api/export", "/audit/api/verify", "/audit/api/me"]
)
def test_api_refuses_without_auditor_credentials(audited: TestClient, path: str) -> None:
    assert audited.get(path).status_code == 401
    assert audited.get(path, auth=("alice", "wrong")).status_code == 401
    assert audited.get(path, auth=("mallory", AUDITOR[1])).status_code == 401


def test_page_sends_strangers_to_sign_in(audited: TestClient) -> None:
    response = audited.get("/audit/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/audit/login"
    assert "password" in audited.get("/audit/login").text.lower()


def test_sign_in_sets_a_session_cookie(audited: TestClient) -> None:
    failed = audited.post("/audit/login", data={"username": "alice", "password": "nope"}, follow_redirects=False)
    assert failed.headers["location"] == "/audit/login?failed=1"
    response = audited.post(
        "/audit/login", data={"username": AUDITOR[0], "password": AUDITOR[1]}, follow_redirects=False
    )
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert audited.get("/audit/api/me").json() == {"auditor": "alice"}
    assert audited.get("/audit/", follow_redirects=False).status_code == 200
    audited.post("/audit/logout")
    assert audited.get("/audit/api/me").status_code == 401


def test_forged_session_cookie_is_refused(audited: TestClient) -> None:
    import base64

    forged = base64.urlsafe_b64encode(b"alice|9999999999|0000").decode()
    audited.cookies.set("cds_audit_session", forged, path="/audit")
    assert audited.get("/audit/api/me").status_code == 401


def test_filters_and_pagination(audited: TestClient, knowledge: Knowledge) -> None:
    everything = _get(audited, "/audit/api/invocations")
    assert everything["total"] == 4
    her2 = _get(audited, "/audit/api/invocations", rule="receptor-her2-positive")
    assert her2["total"] == 1
    assert her2["items"][0]["cards"][0]["ruleId"] == "receptor-her2-positive"
    assert _get(audited, "/audit/api/invocations", indicator="critical")["total"] == 1
    patient = hook_request(knowledge, "partner-missing")["context"]["patientId"]
    assert _get(audited, "/audit/api/invocations", patient=patient)["total"] == 1
    assert _get(audited, "/audit/api/invocations", service="palbociclib-order-select")["total"] == 0
    page_one = _get(audited, "/audit/api/invocations", page=1, page_size=3)
    page_two = _get(audited, "/audit/api/invocations", page=2, page_size=3)
    assert len(page_one["items"]) == 3
    assert len(page_two["items"]) == 1
    seen = {i["recordId"] for i in page_one["items"]} | {i["recordId"] for i in page_two["items"]}
    assert len(seen) == 4
    assert audited.get("/audit/api/invocations", params={"indicator": "loud"}, auth=AUDITOR).status_code == 400


def test_feedback_outcome_filter_and_summary(audited: TestClient) -> None:
    listing = _get(audited, "/audit/api/invocations", rule="partner-missing")
    card = listing["items"][0]["cards"][0]
    feedback = {
        "card": card["uuid"],
        "outcome": "overridden",
        "outcomeTimestamp": "2026-11-20T15:09:00Z",
        "overrideReason": {
            "reason": {
                "code": "clinical-trial",
                "system": "urn:palbociclib-cds:override-reason",
                "display": "Patient is treated on a clinical trial protocol",
            }
        },
    }
    audited.post(f"/cds-services/{SIGN}/feedback", json={"feedback": [feedback]})
    assert _get(audited, "/audit/api/invocations", outcome="overridden")["total"] == 1
    assert _get(audited, "/audit/api/invocations", outcome="none", rule="receptor-her2-positive")["total"] == 1
    summary = {row["ruleId"]: row for row in _get(audited, "/audit/api/summary")}
    assert summary["partner-missing"]["fired"] == 1
    assert summary["partner-missing"]["overridden"] == 1
    assert summary["partner-missing"]["overrideReasons"] == {"Patient is treated on a clinical trial protocol": 1}
    assert summary["receptor-her2-positive"]["noResponse"] == 1


def test_one_invocation_in_full(audited: TestClient) -> None:
    item = _get(audited, "/audit/api/invocations", rule="receptor-her2-positive")["items"][0]
    detail = _get(audited, f"/audit/api/invocations/{item['recordId']}")
    card = next(c for c in detail["record"]["cards"] if c["ruleId"] == "receptor-her2-positive")
    assert "<table>" in card["detailHtml"]
    assert card["feedback"] == []
    assert card["evidence"]
    assert audited.get("/audit/api/invocations/nope", auth=AUDITOR).status_code == 404


def test_markdown_from_record_data_is_escaped(audited: TestClient, knowledge: Knowledge) -> None:
    request = hook_request(knowledge, "receptor-her2-positive-icd")
    for entry in request["prefetch"]["conditions"]["entry"]:
        code = entry["resource"]["code"]
        code["text"] = "<script>alert(1)</script> HER2"
    audited.post(f"/cds-services/{SIGN}", json=request)
    item = _get(audited, "/audit/api/invocations", rule="receptor-her2-positive")["items"][0]
    detail = _get(audited, f"/audit/api/invocations/{item['recordId']}")
    html = next(c for c in detail["record"]["cards"] if c["ruleId"] == "receptor-her2-positive")["detailHtml"]
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_exports(audited: TestClient) -> None:
    lines = audited.get("/audit/api/export", params={"format": "ndjson"}, auth=AUDITOR).text.splitlines()
    assert len(lines) == 4
    assert all(json.loads(line)["kind"] == "invocation" for line in lines)
    rows = list(
        csv.DictReader(io.StringIO(audited.get("/audit/api/export", params={"format": "csv"}, auth=AUDITOR).text))
    )
    assert {r["ruleId"] for r in rows} >= {"partner-missing", "receptor-her2-positive", "receptor-status-unknown"}
    bundle = _get(audited, "/audit/api/export", format="fhir")
    validate_resource(bundle)
    events = [e["resource"] for e in bundle["entry"]]
    assert len(events) == 4
    for event in events:
        validate_resource(event)
        assert event["entity"][0]["type"]["code"] == "XrequestId"
        assert event["entity"][1]["what"]["reference"].startswith("Patient/")
        assert any(agent["requestor"] for agent in event["agent"])


def test_every_auditor_access_is_recorded(audited: TestClient) -> None:
    _get(audited, "/audit/api/invocations", rule="partner-missing")
    _get(audited, "/audit/api/summary")
    audited.get("/audit/api/me", auth=("alice", "wrong"))
    store = audited.app.state.runtime.audit  # type: ignore[attr-defined]
    accesses = store.records("auditor-access")
    actions = [(a["auditor"], a["action"]) for a in accesses]
    assert ("alice", "list invocations") in actions
    assert ("alice", "rule summary") in actions
    listed = next(a for a in accesses if a["action"] == "list invocations")
    assert listed["parameters"]["rule"] == "partner-missing"
    assert _get(audited, "/audit/api/verify")["ok"] is True


def test_export_command(tmp_path: Path, audited: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from cds_service.__main__ import main

    runtime = audited.app.state.runtime  # type: ignore[attr-defined]
    monkeypatch.setenv("CDS_DATA_DIR", str(tmp_path))
    if runtime.settings.audit_db_url:
        monkeypatch.setenv("CDS_AUDIT_DB_URL", runtime.settings.audit_db_url)
    target = tmp_path / "events.json"
    assert main(["audit", "export", "--format", "fhir", "--output", str(target)]) == 0
    bundle = json.loads(target.read_text())
    validate_resource(bundle)
    assert len(bundle["entry"]) == 4


def test_hash_password_command(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from cds_service.__main__ import main
    from cds_service.audit.auditors import check_password

    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret\n"))
    assert main(["audit", "hash-password"]) == 0
    encoded = capsys.readouterr().out.strip()
    assert check_password("s3cret", encoded)
    assert not check_password("other", encoded)


def test_plain_password_in_settings_is_refused() -> None:
    with pytest.raises(ValueError, match="never a plain password"):
        Settings(auditors={"bob": "hunter2"})
