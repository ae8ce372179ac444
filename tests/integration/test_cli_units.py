"""The health-IT kit's command-line pieces that need no FHIR server: argument errors, date shifting, the
transaction Bundle, JWT signing, draft orders, response validation, and the simulator's handling of prefetch
answers and discovery (against a small local HTTP stub)."""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from cds_service.__main__ import main
from cds_service.cli import fixtures, send_hook
from cds_service.fhir.local import record_resources
from tests.support import FIXTURES, REFERENCE_TIME

# -- date shifting ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "days", "expected"),
    [
        ("2026-11-20", 1, "2026-11-21"),
        ("2026-11-20T14:55:00Z", 1, "2026-11-21T14:55:00Z"),
        ("2026-11-20T14:55:00.123+05:30", -20, "2026-10-31T14:55:00.123+05:30"),
        ("2026-12-31T23:59:59Z", 1, "2027-01-01T23:59:59Z"),
        ("2028-02-28", 1, "2028-02-29"),  # leap year
        ("1962-03-14", 365, "1963-03-14"),
        ("2025-10", 40, "2025-11"),  # partial dates move their first day, keep their precision
        ("2025", 400, "2026"),
        ("2026-11-20", 0, "2026-11-20"),
        ("Negative", 5, "Negative"),
        ("7646", 5, "7646"),
        ("2026-13-40", 1, "2026-13-40"),  # not a date: unchanged
    ],
)
def test_shift_date_value(value: str, days: int, expected: str) -> None:
    assert fixtures.shift_date_value(value, days) == expected


def test_shift_dates_moves_dates_and_periods_only() -> None:
    resource = {
        "resourceType": "MedicationRequest",
        "id": "mr-2026-11-20",
        "status": "draft",
        "authoredOn": "2026-11-20T14:55:00Z",
        "contained": [{"resourceType": "Medication", "id": "m", "code": {"coding": [{"code": "7646"}]}}],
        "dosageInstruction": [
            {
                "timing": {
                    "event": ["2026-11-20"],
                    "repeat": {"boundsPeriod": {"start": "2026-11-20", "end": "2026-12-10"}},
                }
            }
        ],
        "note": [{"text": "started 2026-11-20", "time": "2026-11-20T10:00:00Z"}],
        "extension": [{"url": "http://example.org/x", "valueDateTime": "2026-11-01", "valueString": "2026-11-01"}],
    }
    shifted = fixtures.shift_dates(resource, 3)
    assert shifted["authoredOn"] == "2026-11-23T14:55:00Z"
    repeat = shifted["dosageInstruction"][0]["timing"]
    assert repeat["event"] == ["2026-11-23"]
    assert repeat["repeat"]["boundsPeriod"] == {"start": "2026-11-23", "end": "2026-12-13"}
    assert shifted["note"][0] == {"text": "started 2026-11-20", "time": "2026-11-23T10:00:00Z"}
    assert shifted["extension"][0]["valueDateTime"] == "2026-11-04"
    assert shifted["extension"][0]["valueString"] == "2026-11-01"  # text stays text
    assert shifted["id"] == "mr-2026-11-20"  # ids stay stable: loading stays idempotent
    assert shifted["contained"][0]["code"]["coding"][0]["code"] == "7646"
    assert resource["authoredOn"] == "2026-11-20T14:55:00Z"  # the input is not changed


def test_shift_dates_on_every_fixture_round_trips_and_keeps_ids() -> None:
    for path in sorted(FIXTURES.glob("*.json")):
        for resource in record_resources(json.loads(path.read_text())):
            shifted = fixtures.shift_dates(resource, 37)
            assert shifted["id"] == resource["id"]
            assert fixtures.shift_dates(shifted, -37) == resource, path.name
    record = json.loads((FIXTURES / "clean-base-order.json").read_text())
    patient = next(r for r in record_resources(record) if r["resourceType"] == "Patient")
    assert fixtures.shift_dates(patient, 37)["birthDate"] != patient["birthDate"]


def test_days_to_today() -> None:
    assert fixtures.days_to_today(REFERENCE_TIME, date(2026, 11, 20)) == 0
    assert fixtures.days_to_today(REFERENCE_TIME, date(2027, 1, 1)) == 42
    assert fixtures.days_to_today(datetime.fromisoformat("2026-11-20T23:30:00-05:00"), date(2026, 11, 22)) == 1


# -- the transaction and the loader ----------------------------------------------------------------------


def test_transaction_puts_each_resource_at_its_id() -> None:
    bundle = fixtures.transaction(
        [{"resourceType": "Patient", "id": "p1"}, {"resourceType": "Observation", "id": "o1"}], "http://fhir/base/"
    )
    assert bundle["type"] == "transaction"
    assert [e["request"] for e in bundle["entry"]] == [
        {"method": "PUT", "url": "Patient/p1"},
        {"method": "PUT", "url": "Observation/o1"},
    ]
    assert bundle["entry"][0]["fullUrl"] == "http://fhir/base/Patient/p1"
    with pytest.raises(ValueError, match="without an id"):
        fixtures.transaction([{"resourceType": "Patient"}], "http://fhir/base")


def test_every_scenario_has_stable_ids_and_its_draft_orders() -> None:
    _reference, found = fixtures.scenarios(FIXTURES)
    for scenario in found:
        resources = record_resources(json.loads(scenario.path.read_text()))
        entries = fixtures.transaction(resources, "http://fhir")["entry"]
        assert len(entries) == len(resources)
        drafts = [r for r in resources if r["resourceType"] == "MedicationRequest" and r.get("status") == "draft"]
        assert drafts, f"{scenario.name}: no draft order to send"


def test_fixtures_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fixtures", "--fixtures-dir", str(FIXTURES), "list"]) == 0
    out = capsys.readouterr().out
    assert "receptor-her2-positive-ihc: HER2 IHC 3+ (HER2-positive)" in out
    assert "expects: receptor-her2-positive (critical)" in out
    assert "clean-base-order: Base patient, correct order\n    expects: no warning or critical card" in out


def test_fixtures_load_unknown_scenario_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["fixtures", "--fixtures-dir", str(FIXTURES), "load", "--fhir-base", "http://127.0.0.1:9", "--scenario", "x"]
    assert main(argv) == 2
    assert "unknown scenario(s): x" in capsys.readouterr().err


def test_fixtures_load_reports_an_unreachable_server(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["fixtures", "--fixtures-dir", str(FIXTURES), "load", "--fhir-base", "http://127.0.0.1:9/fhir"]
    assert main([*argv, "--scenario", "clean-base-order", "--timeout", "2"]) == 1
    captured = capsys.readouterr()
    assert "clean-base-order: 16 resources" in captured.out
    assert "not sent: ConnectionError" in captured.out
    assert "1 failed: clean-base-order" in captured.err


def test_outcome_text() -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "error", "code": "invalid", "diagnostics": "bad code", "expression": ["Observation.code"]}
        ],
    }
    assert fixtures.outcome_text(outcome) == "error/invalid: bad code at Observation.code"


# -- signing ---------------------------------------------------------------------------------------------


def _write_key(path: Path, key: Any, algorithm: Any, **extra: Any) -> dict[str, Any]:
    jwk = {**json.loads(algorithm.to_jwk(key)), **extra}
    path.write_text(json.dumps(jwk))
    return jwk


def test_client_jwt_has_the_cds_hooks_claims(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    _write_key(tmp_path / "k.json", key, jwt.algorithms.ECAlgorithm, kid="k1")
    signing = send_hook.load_signing_key(tmp_path / "k.json")
    assert (signing.alg, signing.kid) == ("ES384", "k1")
    aud = "https://cds.example.org/cds-services/palbociclib-order-sign"
    token = send_hook.client_jwt(signing, "https://ehr.example.org", aud, jku="https://ehr.example.org/jwks")
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "ES384", "typ": "JWT", "kid": "k1", "jku": "https://ehr.example.org/jwks"}
    claims = jwt.decode(token, key.public_key(), algorithms=["ES384"], audience=aud)
    assert claims["iss"] == "https://ehr.example.org"
    assert claims["exp"] - claims["iat"] == send_hook.TOKEN_LIFETIME
    assert abs(claims["iat"] - time.time()) < 5
    other = send_hook.client_jwt(signing, "https://ehr.example.org", aud)
    assert jwt.decode(other, options={"verify_signature": False})["jti"] != claims["jti"]


def test_signing_key_forms_and_errors(tmp_path: Path) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = _write_key(tmp_path / "rsa.json", rsa_key, jwt.algorithms.RSAAlgorithm)
    (tmp_path / "set.json").write_text(json.dumps({"keys": [{**jwk, "kid": "a"}, {**jwk, "kid": "b"}]}))
    assert send_hook.load_signing_key(tmp_path / "set.json", "b").alg == "RS384"
    with pytest.raises(send_hook.UsageError, match="no kid"):
        send_hook.load_signing_key(tmp_path / "rsa.json")
    public = {k: v for k, v in jwk.items() if k not in ("d", "p", "q", "dp", "dq", "qi")}
    (tmp_path / "public.json").write_text(json.dumps({**public, "kid": "p"}))
    with pytest.raises(send_hook.UsageError, match="no private key"):
        send_hook.load_signing_key(tmp_path / "public.json")
    (tmp_path / "es256.json").write_text(json.dumps({**jwk, "kid": "x", "alg": "RS256"}))
    with pytest.raises(send_hook.UsageError, match="ES384 or RS384"):
        send_hook.load_signing_key(tmp_path / "es256.json")
    with pytest.raises(send_hook.UsageError, match="cannot read"):
        send_hook.load_signing_key(tmp_path / "missing.json")


# -- draft orders ----------------------------------------------------------------------------------------


def test_drafts_from_a_medication_request_or_a_bundle() -> None:
    single = send_hook.drafts_from_document({"resourceType": "MedicationRequest", "status": "draft"}, "f")
    assert single[0]["id"]  # order-select needs an id to select
    record = json.loads((FIXTURES / "palbociclib-bundled-medication.json").read_text())
    drafts = send_hook.drafts_from_document(record, "f")
    assert {r["resourceType"] for r in drafts} == {"MedicationRequest", "Medication"}
    assert all(r.get("status") == "draft" for r in drafts if r["resourceType"] == "MedicationRequest")
    orders = {
        "resourceType": "Bundle",
        "entry": [{"resource": {"resourceType": "MedicationRequest", "id": "a", "status": "active"}}],
    }
    assert [r["id"] for r in send_hook.drafts_from_document(orders, "f")] == ["a"]
    with pytest.raises(send_hook.UsageError, match="expected a MedicationRequest or a Bundle"):
        send_hook.drafts_from_document({"resourceType": "Patient"}, "f")
    with pytest.raises(send_hook.UsageError, match="no MedicationRequest"):
        send_hook.drafts_from_document({"resourceType": "Bundle", "entry": []}, "f")


# -- response validation ---------------------------------------------------------------------------------


def _card(**overrides: Any) -> dict[str, Any]:
    card: dict[str, Any] = {
        "summary": "Check the blood count",
        "indicator": "warning",
        "source": {"label": "IBRANCE label", "topic": {"code": "cbc"}},
    }
    card.update(overrides)
    return {k: v for k, v in card.items() if v is not None}


def test_valid_responses() -> None:
    assert send_hook.validate_response({"cards": []}) == []
    suggestion = {"label": "Order a CBC", "actions": [{"type": "create", "description": "CBC", "resource": {}}]}
    card = _card(
        suggestions=[suggestion],
        selectionBehavior="at-most-one",
        overrideReasons=[{"code": "x", "display": "Patient declined"}],
        links=[{"label": "Label", "url": "https://example.org", "type": "absolute"}],
    )
    assert send_hook.validate_response({"cards": [card]}) == []


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ([], "not a JSON object"),
        ({}, "no cards array"),
        ({"cards": {}}, "no cards array"),
        ({"cards": ["x"]}, "cards[0]: not an object"),
        ({"cards": [_card(summary="x" * 140)]}, "summary has 140 characters"),
        ({"cards": [_card(summary=None)]}, "summary is required"),
        ({"cards": [_card(indicator="hard-stop")]}, "indicator 'hard-stop' is not one of"),
        ({"cards": [_card(source={"url": "https://x"})]}, "source.label is required"),
        ({"cards": [_card(suggestions=[{"label": "Do"}])]}, "need selectionBehavior"),
        ({"cards": [_card(suggestions=[{}], selectionBehavior="any")]}, "suggestions[0]: label is required"),
        (
            {"cards": [_card(suggestions=[{"label": "x", "actions": [{"type": "delete"}]}], selectionBehavior="any")]},
            "description is required",
        ),
        (
            {"cards": [_card(suggestions=[{"label": "x", "actions": [{"type": "create", "description": "d"}]}],
                             selectionBehavior="any")]},
            "a create action needs a resource",
        ),
        ({"cards": [_card(overrideReasons=[{"code": "x"}])]}, "overrideReasons[0]: display is required"),
        ({"cards": [_card(links=[{"label": "x", "url": "https://x", "type": "web"}])]}, "must be absolute or smart"),
        ({"cards": [], "systemActions": {}}, "systemActions is not an array"),
    ],
)  # fmt: skip
def test_invalid_responses(body: Any, problem: str) -> None:
    assert any(problem in p for p in send_hook.validate_response(body)), send_hook.validate_response(body)


# -- argument errors -------------------------------------------------------------------------------------

BASE = ["send-hook", "--service-base", "http://127.0.0.1:9", "--fhir-base", "http://127.0.0.1:9/fhir"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([*BASE, "--scenario", "partner-missing", "--sign-key", "k.json"], "--sign-key needs --iss"),
        ([*BASE, "--scenario", "partner-missing", "--iss", "https://x"], "give --sign-key too"),
        ([*BASE, "--scenario", "partner-missing", "--no-prefetch", "--post-search"], "cannot go with --no-prefetch"),
        ([*BASE, "--scenario", "no-such-scenario"], "no scenario 'no-such-scenario'"),
        ([*BASE, "--order", "/nonexistent/order.json"], "cannot read /nonexistent/order.json"),
        ([*BASE, "--scenario", "partner-missing", "--timeout", "0"], "--timeout must be positive"),
        (["send-hook", "--service-base", "localhost:80", "--fhir-base", "http://f", "--scenario", "x"], "http(s) URL"),
    ],
)
def test_usage_errors_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, "--fixtures-dir", str(FIXTURES)]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        BASE,  # neither --order nor --scenario
        [*BASE, "--order", "o.json", "--scenario", "partner-missing"],
        [*BASE, "--scenario", "partner-missing", "--hook", "patient-view"],
        ["send-hook", "--fhir-base", "http://f", "--scenario", "partner-missing"],
    ],
)
def test_argparse_refuses_bad_combinations(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2


def test_order_without_a_patient_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    order = tmp_path / "order.json"
    order.write_text(json.dumps({"resourceType": "MedicationRequest", "status": "draft", "id": "o"}))
    assert main([*BASE, "--order", str(order)]) == 2
    assert "no patient: give --patient" in capsys.readouterr().err


# -- the simulator against a local stub ------------------------------------------------------------------


class Stub:
    """A tiny HTTP server: (method, path with query) -> (status, JSON body); records what it was sent.

    ``drop_reused``: HTTP/1.1 keep-alive, but a request arriving on a connection that already had one is not
    answered and the connection is closed, as when the server's idle timer fires just as the client reuses it.
    The connection stays open after an answer even if the request asked for ``Connection: close``: whether the
    client then reuses it must not depend on how fast the server's close reaches it."""

    def __init__(self, drop_reused: bool = False) -> None:
        self.routes: dict[tuple[str, str], tuple[int, Any]] = {}
        self.seen: list[dict[str, Any]] = []
        self.dropped = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if drop_reused else "HTTP/1.0"
            answered = 0  # one handler per connection

            def _answer(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                if drop_reused and self.answered:
                    stub.dropped += 1
                    self.close_connection = True
                    return
                self.answered += 1
                if drop_reused:
                    self.close_connection = False
                stub.seen.append({"method": method, "path": self.path, "headers": dict(self.headers), "body": body})
                status, answer = stub.routes.get((method, self.path), (404, {"resourceType": "OperationOutcome"}))
                data = json.dumps(answer).encode() if not isinstance(answer, bytes) else answer
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._answer("GET")

            def do_POST(self) -> None:
                self._answer("POST")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub() -> Iterator[Stub]:
    server = Stub()
    yield server
    server.close()


SERVICE = {
    "hook": "order-sign",
    "id": "check",
    "description": "d",
    "prefetch": {
        "patient": "Patient/{{context.patientId}}",
        "conditions": "Condition?patient={{context.patientId}}",
        "meds": "MedicationRequest?patient={{context.patientId}}&status=active",
        "labs": "Observation?patient={{context.patientId}}",
        "encounter": "Encounter/{{context.encounterId}}",
        "user": "Practitioner/{{userPractitionerId}}",
    },
}


DRAFT = next(
    e["resource"]
    for e in json.loads((FIXTURES / "partner-missing.json").read_text())["entry"]
    if e["resource"].get("status") == "draft"
)


def _args(stub: Stub, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    send_hook.add_arguments(parser)
    argv = ["--service-base", stub.base, "--fhir-base", f"{stub.base}/fhir", "--scenario", "partner-missing"]
    return parser.parse_args([*argv, "--fixtures-dir", str(FIXTURES), *extra])


def test_prefetch_answers_become_values_nulls_outcomes_or_absent_keys(stub: Stub) -> None:
    patient = "pmis-pat"
    searchset = {"resourceType": "Bundle", "type": "searchset", "entry": []}
    stub.routes = {
        ("GET", "/cds-services"): (200, {"services": [SERVICE]}),
        ("GET", f"/fhir/Patient/{patient}"): (404, {"resourceType": "OperationOutcome"}),
        ("GET", f"/fhir/Condition?patient={patient}"): (200, {**searchset, "link": [{"relation": "next", "url": "x"}]}),
        ("GET", f"/fhir/MedicationRequest?patient={patient}&status=active"): (
            500,
            {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "exception"}]},
        ),
        ("GET", f"/fhir/Observation?patient={patient}"): (502, b"<html>bad gateway</html>"),
        ("GET", "/fhir/Practitioner/cds-simulator"): (200, {"resourceType": "Practitioner", "id": "cds-simulator"}),
        ("GET", "/fhir/MedicationRequest/pmis-draft-palbo"): (200, {**DRAFT, "authoredOn": "2027-01-01"}),
        ("POST", "/cds-services/check"): (200, {"cards": []}),
    }
    exchange = send_hook.simulate(_args(stub, "--token", "secret"))
    # the draft as the FHIR server holds it (e.g. loaded with --shift-to-today), not the fixture's copy
    assert exchange.request["context"]["draftOrders"]["entry"][0]["resource"]["authoredOn"] == "2027-01-01"
    prefetch = exchange.request["prefetch"]
    assert prefetch["patient"] is None  # a read that found nothing: "no data"
    assert prefetch["conditions"]["type"] == "searchset"
    assert prefetch["meds"]["resourceType"] == "OperationOutcome"  # the EHR's own fetch failed
    assert "labs" not in prefetch  # no usable answer: not satisfied
    assert "encounter" not in prefetch  # no encounterId in the context: not sent
    assert prefetch["user"]["id"] == "cds-simulator"  # userPractitionerId from context.userId
    assert any("paged" in note for note in exchange.notes)
    fhir_calls = [s for s in stub.seen if s["path"].startswith("/fhir/")]
    assert {s["headers"]["Authorization"] for s in fhir_calls} == {"Bearer secret"}
    request = exchange.request
    assert request["fhirServer"] == f"{stub.base}/fhir"
    assert request["fhirAuthorization"]["access_token"] == "secret"
    assert request["fhirAuthorization"]["token_type"] == "Bearer"
    assert request["fhirAuthorization"]["patient"] == patient
    assert request["context"]["userId"] == "Practitioner/cds-simulator"
    assert [e["resource"]["id"] for e in request["context"]["draftOrders"]["entry"]] == ["pmis-draft-palbo"]
    assert exchange.problems == []


def test_post_search_no_prefetch_and_no_token(stub: Stub) -> None:
    stub.routes = {
        ("GET", "/cds-services"): (200, {"services": [SERVICE]}),
        ("POST", "/fhir/MedicationRequest/_search"): (200, {"resourceType": "Bundle", "type": "searchset"}),
        ("POST", "/cds-services/check"): (200, {"cards": []}),
    }
    exchange = send_hook.simulate(_args(stub, "--post-search", "--encounter", "enc-1", "--user", "PractitionerRole/r"))
    assert exchange.request["context"]["draftOrders"]["entry"][0]["resource"] == DRAFT  # not on the server
    assert "draft MedicationRequest/pmis-draft-palbo: HTTP 404 from the FHIR server" in exchange.notes[0]
    search = next(s for s in stub.seen if s["path"] == "/fhir/MedicationRequest/_search")
    assert search["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert search["body"] == "patient=pmis-pat&status=active"
    assert "Authorization" not in search["headers"]
    assert any(s["path"] == "/fhir/Encounter/enc-1" for s in stub.seen)
    assert "fhirAuthorization" not in exchange.request
    assert exchange.request["context"]["encounterId"] == "enc-1"
    stub.seen.clear()
    exchange = send_hook.simulate(_args(stub, "--no-prefetch"))
    assert "prefetch" not in exchange.request
    assert [s["path"] for s in stub.seen if s["path"].startswith("/fhir/")] == [
        "/fhir/MedicationRequest/pmis-draft-palbo"  # the draft as the server holds it; no prefetch query
    ]


def test_the_hook_call_does_not_reuse_the_discovery_connection() -> None:
    """Between discovery and the hook call the simulator reads the FHIR server, for seconds against a large one:
    long enough for the service to close the kept-alive discovery connection (uvicorn after 5 s), and a POST
    written as it closes is lost and not retried. Discovery asks for its connection to be closed, so the hook
    call opens its own."""
    service, fhir = Stub(drop_reused=True), Stub()
    try:
        service.routes = {
            ("GET", "/cds-services"): (200, {"services": [SERVICE]}),
            ("POST", "/cds-services/check"): (200, {"cards": []}),
        }
        parser = argparse.ArgumentParser()
        send_hook.add_arguments(parser)
        argv = ["--service-base", service.base, "--fhir-base", f"{fhir.base}/fhir", "--scenario", "partner-missing"]
        args = parser.parse_args([*argv, "--fixtures-dir", str(FIXTURES), "--no-prefetch"])
        exchange = send_hook.simulate(args)
        assert exchange.status == 200
        assert exchange.problems == []
        assert [(s["method"], s["path"]) for s in service.seen] == [
            ("GET", "/cds-services"),
            ("POST", "/cds-services/check"),
        ]
        assert service.dropped == 0
    finally:
        service.close()
        fhir.close()


def test_order_select_selects_the_draft_orders(stub: Stub) -> None:
    stub.routes = {
        ("GET", "/cds-services"): (200, {"services": [{**SERVICE, "hook": "order-select", "prefetch": {}}]}),
        ("POST", "/cds-services/check"): (200, {"cards": []}),
    }
    exchange = send_hook.simulate(_args(stub, "--hook", "order-select", "--service-base", f"{stub.base}/cds-services/"))
    assert exchange.request["context"]["selections"] == ["MedicationRequest/pmis-draft-palbo"]
    assert exchange.status == 200  # the discovery URL works as the service base too


def test_discovery_without_the_service_is_a_protocol_error(stub: Stub, capsys: pytest.CaptureFixture[str]) -> None:
    stub.routes = {("GET", "/cds-services"): (200, {"services": [{**SERVICE, "hook": "patient-view"}]})}
    assert send_hook.main(_args(stub)) == 1
    assert "discovery lists no order-sign service; services: check (patient-view)" in capsys.readouterr().err
    stub.routes = {("GET", "/cds-services"): (200, {"services": [SERVICE, {**SERVICE, "id": "other"}]})}
    assert send_hook.main(_args(stub)) == 2
    assert "choose one with --service" in capsys.readouterr().err
    stub.routes = {("GET", "/cds-services"): (200, {"no": "services"})}
    assert send_hook.main(_args(stub)) == 1
    assert "no services array" in capsys.readouterr().err


def test_invalid_or_refused_responses_exit_1(stub: Stub, capsys: pytest.CaptureFixture[str]) -> None:
    discovery = {("GET", "/cds-services"): (200, {"services": [{**SERVICE, "prefetch": {}}]})}
    stub.routes = {**discovery, ("POST", "/cds-services/check"): (200, {"cards": [{"summary": "x" * 150}]})}
    assert send_hook.main(_args(stub, "--json")) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["cards"][0]["summary"] == "x" * 150  # --json prints the raw answer anyway
    assert "summary has 150 characters" in captured.err
    assert "source.label is required" in captured.err
    issue = {"severity": "error", "code": "incomplete", "diagnostics": "no data"}
    outcome = {"resourceType": "OperationOutcome", "issue": [issue]}
    stub.routes = {**discovery, ("POST", "/cds-services/check"): (412, outcome)}
    assert send_hook.main(_args(stub)) == 1
    captured = capsys.readouterr()
    assert "HTTP 412" in captured.out
    assert "protocol error: HTTP 412 from" in captured.err
    assert "error/incomplete: no data" in captured.err


def test_readable_output(stub: Stub, capsys: pytest.CaptureFixture[str]) -> None:
    card = _card(
        indicator="critical",
        suggestions=[{"label": "Cancel the order", "isRecommended": True}, {"label": "Keep it"}],
        selectionBehavior="at-most-one",
    )
    stub.routes = {
        ("GET", "/cds-services"): (200, {"services": [{**SERVICE, "prefetch": {}}]}),
        ("POST", "/cds-services/check"): (200, {"cards": [card]}),
    }
    assert send_hook.main(_args(stub)) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "check · HTTP 200 · 0 prefetch keys · 1 card(s)"
    assert out[1] == "CRITICAL [cbc] Check the blood count"
    assert out[2].strip() == "source: IBRANCE label"
    assert out[3].strip() == "suggestion: Cancel the order (recommended)"
    assert out[4].strip() == "suggestion: Keep it"


def test_signed_calls_carry_a_fresh_jwt_for_each_url(stub: Stub, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    _write_key(tmp_path / "k.json", key, jwt.algorithms.ECAlgorithm, kid="k1", alg="ES384")
    stub.routes = {
        ("GET", "/cds-services"): (200, {"services": [{**SERVICE, "prefetch": {}}]}),
        ("POST", "/cds-services/check"): (200, {"cards": []}),
    }
    send_hook.simulate(_args(stub, "--sign-key", str(tmp_path / "k.json"), "--iss", "https://ehr"))
    calls = [s for s in stub.seen if s["path"].startswith("/cds-services")]
    assert not [s for s in stub.seen if s not in calls and "Authorization" in s["headers"]]  # no JWT to FHIR
    tokens = {s["path"]: s["headers"]["Authorization"].removeprefix("Bearer ") for s in calls}
    assert set(tokens) == {"/cds-services", "/cds-services/check"}
    for path, token in tokens.items():
        claims = jwt.decode(token, key.public_key(), algorithms=["ES384"], audience=f"{stub.base}{path}")
        assert claims["iss"] == "https://ehr"
    jtis = {jwt.decode(t, options={"verify_signature": False})["jti"] for t in tokens.values()}
    assert len(jtis) == 2
