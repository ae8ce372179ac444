"""Prefetch and the FHIR fallback: absent keys fetched with the Bearer token, null keys trusted,
OperationOutcome keys re-read, failures reported on a data-unavailable card, 412 when nothing is had.
Only the FHIR server edge is mocked (respx); the app runs for real through its ASGI interface."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import respx
from fastapi.testclient import TestClient

from cds_service.fhir.client import FhirGateway
from cds_service.knowledge import Knowledge
from tests.support import SIGN, assert_valid, fallback_request, fhir_routes, hook_request, rule_ids

BASE = "https://ehr.example.org/fhir"
OUTCOME = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "exception", "diagnostics": "EHR fetch failed"}],
}


def _call(client: TestClient, request: dict[str, Any]) -> dict[str, Any]:
    response = client.post(f"/cds-services/{SIGN}", json=request)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert_valid(body, "ServiceResponse")
    return body


def _unavailable(body: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in body["cards"] if c["source"]["topic"]["code"] == "data-unavailable"), None)


def test_every_key_missing_is_fetched_with_the_bearer_token(client: TestClient, knowledge: Knowledge) -> None:
    with respx.mock(assert_all_called=True, assert_all_mocked=True) as router:
        routes = fhir_routes(router, knowledge, "partner-missing", BASE)
        body = _call(client, fallback_request(knowledge, "partner-missing", BASE))
    assert set(routes) == {p.key for p in knowledge.registry[SIGN].prefetch}
    for route in routes.values():
        assert route.call_count == 1
        assert route.calls.last.request.headers["Authorization"] == "Bearer secret-token"
        assert route.calls.last.request.headers["Accept"] == "application/fhir+json"
    assert rule_ids(body, at_least="warning") == {("partner-missing", "warning")}
    assert _unavailable(body) is None


def test_fallback_and_prefetch_give_the_same_cards(client: TestClient, knowledge: Knowledge) -> None:
    for name in ("clean-base-order", "receptor-er-negative-observation", "partner-medication-statement"):
        with respx.mock(assert_all_called=True) as router:
            fhir_routes(router, knowledge, name, BASE)
            fetched = _call(client, fallback_request(knowledge, name, BASE))
        prefetched = _call(client, hook_request(knowledge, name))
        assert rule_ids(fetched) == rule_ids(prefetched), name


def test_only_missing_keys_are_fetched(client: TestClient, knowledge: Knowledge) -> None:
    keep = ("patient", "conditions", "receptors")
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        routes = fhir_routes(router, knowledge, "clean-base-order", BASE)
        body = _call(client, fallback_request(knowledge, "clean-base-order", BASE, keep=keep))
    for key, route in routes.items():
        assert route.call_count == (0 if key in keep else 1), key
    assert rule_ids(body, at_least="warning") == set()


def test_null_keys_are_not_requeried(client: TestClient, knowledge: Knowledge) -> None:
    request = hook_request(knowledge, "clean-base-order", null=("medicationStatements", "procedures"))
    request["fhirServer"] = BASE
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        routes = fhir_routes(router, knowledge, "clean-base-order", BASE)
        body = _call(client, request)
    assert all(route.call_count == 0 for route in routes.values())
    assert rule_ids(body, at_least="warning") == set()


def test_null_medications_mean_no_partner(client: TestClient, knowledge: Knowledge) -> None:
    request = hook_request(knowledge, "clean-base-order", null=("medicationRequests", "medicationStatements"))
    body = _call(client, request)
    assert ("partner-missing", "warning") in rule_ids(body)
    assert _unavailable(body) is None


def test_operation_outcome_key_without_server_is_reported(client: TestClient, knowledge: Knowledge) -> None:
    request = hook_request(knowledge, "clean-base-order")
    request["prefetch"]["receptors"] = OUTCOME
    body = _call(client, request)
    card = _unavailable(body)
    assert card is not None
    assert card["indicator"] == "warning"
    assert "Tumour receptor status" in card["detail"]
    assert "tumour receptor results" in card["detail"]
    assert "receptor-status-unknown" not in {c["source"]["topic"]["code"] for c in body["cards"]}


def test_operation_outcome_key_is_reread_from_the_server(client: TestClient, knowledge: Knowledge) -> None:
    request = hook_request(knowledge, "clean-base-order")
    request["prefetch"]["receptors"] = OUTCOME
    request["fhirServer"] = BASE
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        routes = fhir_routes(router, knowledge, "clean-base-order", BASE, token=None)
        body = _call(client, request)
    assert routes["receptors"].call_count == 1
    assert sum(r.call_count for r in routes.values()) == 1
    assert "Authorization" not in routes["receptors"].calls.last.request.headers
    assert rule_ids(body, at_least="warning") == set()


FAULTS = {
    "http-500": httpx.Response(500, json=OUTCOME),
    "http-401": httpx.Response(401, json=OUTCOME),
    "timeout": httpx.ReadTimeout("slow"),
    "connection-reset": httpx.ConnectError("reset"),
    "malformed-json": httpx.Response(
        200, content=b'{"resourceType": "Bundle", "entry": [', headers={"Content-Type": "application/fhir+json"}
    ),
    "not-a-bundle": httpx.Response(200, json={"resourceType": "Patient", "id": "x"}),
    "json-array": httpx.Response(200, json=[1, 2, 3]),
}


@pytest.mark.parametrize("fault", FAULTS, ids=list(FAULTS))
def test_a_failing_query_degrades_to_a_data_unavailable_card(
    client: TestClient, knowledge: Knowledge, fault: str
) -> None:
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        routes = fhir_routes(router, knowledge, "partner-missing", BASE)
        effect = FAULTS[fault]
        routes["medicationRequests"].mock(side_effect=effect) if isinstance(effect, Exception) else routes[
            "medicationRequests"
        ].mock(return_value=effect)
        body = _call(client, fallback_request(knowledge, "partner-missing", BASE))
    card = _unavailable(body)
    assert card is not None
    assert "Endocrine partner" in card["detail"]
    assert "medication orders" in card["detail"]
    # The partner check could not run, so it must not claim the partner is missing.
    assert "partner-missing" not in {c["source"]["topic"]["code"] for c in body["cards"]}
    # The other checks ran on the data that was had.
    assert ("receptor-status-unknown", "warning") not in rule_ids(body)


def test_deadline_bounds_a_slow_fhir_server(make_client: Any, knowledge: Knowledge) -> None:
    import asyncio
    import time

    client = make_client(deadline_seconds=0.5)

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(2.0)
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset"})

    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        routes = fhir_routes(router, knowledge, "clean-base-order", BASE)
        routes["conditions"].mock(side_effect=slow)
        started = time.monotonic()
        body = _call(client, fallback_request(knowledge, "clean-base-order", BASE))
        elapsed = time.monotonic() - started
    card = _unavailable(body)
    assert card is not None
    assert "problem list" in card["detail"]
    assert elapsed < 1.5


def test_next_links_are_followed_on_the_same_server(client: TestClient, knowledge: Knowledge) -> None:
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        routes = fhir_routes(router, knowledge, "partner-missing", BASE)
        page_two = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [
                {
                    "resource": {
                        "resourceType": "MedicationRequest",
                        "id": "page2-letrozole",
                        "status": "active",
                        "intent": "order",
                        "medicationCodeableConcept": {
                            "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "72965"}]
                        },
                    }
                }
            ],
        }
        first = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [],
            "link": [{"relation": "next", "url": f"{BASE}/MedicationRequest?_getpages=abc&page=2"}],
        }
        routes["medicationRequests"].mock(return_value=httpx.Response(200, json=first))
        second = router.get(f"{BASE}/MedicationRequest", params={"_getpages": "abc"}).mock(
            return_value=httpx.Response(200, json=page_two)
        )
        body = _call(client, fallback_request(knowledge, "partner-missing", BASE))
    assert second.call_count == 1
    assert second.calls.last.request.headers["Authorization"] == "Bearer secret-token"
    assert "partner-missing" not in {c["source"]["topic"]["code"] for c in body["cards"]}


def test_next_link_to_a_foreign_host_is_not_followed(client: TestClient, knowledge: Knowledge) -> None:
    with respx.mock(assert_all_called=False, assert_all_mocked=False) as router:
        routes = fhir_routes(router, knowledge, "partner-missing", BASE)
        first = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [],
            "link": [{"relation": "next", "url": "https://attacker.example.com/steal?page=2"}],
        }
        routes["medicationRequests"].mock(return_value=httpx.Response(200, json=first))
        foreign = router.route(host="attacker.example.com").mock(return_value=httpx.Response(200, json={}))
        body = _call(client, fallback_request(knowledge, "partner-missing", BASE))
    assert foreign.call_count == 0
    card = _unavailable(body)
    assert card is not None
    assert "not followed" in card["detail"]


def test_next_link_paging_is_bounded(make_client: Any, knowledge: Knowledge) -> None:
    client = make_client(fhir_max_pages=3)
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        routes = fhir_routes(router, knowledge, "clean-base-order", BASE)
        endless = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [],
            "link": [{"relation": "next", "url": f"{BASE}/Condition?page=next"}],
        }
        routes["conditions"].mock(return_value=httpx.Response(200, json=endless))
        more = router.get(f"{BASE}/Condition", params={"page": "next"}).mock(
            return_value=httpx.Response(200, json=endless)
        )
        body = _call(client, fallback_request(knowledge, "clean-base-order", BASE))
    assert routes["conditions"].call_count + more.call_count == 3
    card = _unavailable(body)
    assert card is not None
    assert "paging did not end within 3 pages" in card["detail"]


def test_no_prefetch_and_no_fhir_server_is_412(client: TestClient, knowledge: Knowledge) -> None:
    request = hook_request(knowledge, "clean-base-order", with_prefetch=False)
    response = client.post(f"/cds-services/{SIGN}", json=request)
    assert response.status_code == 412
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert any("patient" in issue["diagnostics"] for issue in body["issue"])


def test_every_query_failing_is_412(client: TestClient, knowledge: Knowledge) -> None:
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        router.route(host="ehr.example.org").mock(return_value=httpx.Response(503))
        response = client.post(f"/cds-services/{SIGN}", json=fallback_request(knowledge, "clean-base-order", BASE))
    assert response.status_code == 412
    assert "HTTP 503" in response.text


def test_some_keys_without_a_server_give_200_with_data_unavailable(client: TestClient, knowledge: Knowledge) -> None:
    request = hook_request(knowledge, "clean-base-order", drop=("conditions",))
    body = _call(client, request)
    card = _unavailable(body)
    assert card is not None
    assert "no FHIR server" in card["detail"]


def test_plain_http_fhir_server_is_refused_for_remote_hosts(client: TestClient, knowledge: Knowledge) -> None:
    request = fallback_request(knowledge, "clean-base-order", "http://ehr.example.org/fhir")
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        catch_all = router.route().mock(return_value=httpx.Response(200, json={}))
        response = client.post(f"/cds-services/{SIGN}", json=request)
    assert catch_all.call_count == 0
    assert response.status_code == 412
    assert "https" in response.text


def test_plain_http_is_allowed_on_loopback(client: TestClient, knowledge: Knowledge) -> None:
    base = "http://127.0.0.1:8099/fhir"
    with respx.mock(assert_all_called=True) as router:
        fhir_routes(router, knowledge, "clean-base-order", base)
        body = _call(client, fallback_request(knowledge, "clean-base-order", base))
    assert rule_ids(body, at_least="warning") == set()


def test_a_page_beyond_the_bound_gives_the_bound_and_no_further_page() -> None:
    """A server that ignores ``_count``: the first ``limit`` entries are used, as complete, and the next
    page is not asked for."""
    entries = [{"resource": {"resourceType": "Observation", "id": f"o{i}"}} for i in range(1000)]
    page = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": entries,
        "link": [{"relation": "next", "url": f"{BASE}/Observation?page=2"}],
    }

    async def search() -> list[dict[str, Any]]:
        async with httpx.AsyncClient() as http:
            gateway = FhirGateway(http, BASE, None, timeout=5, max_pages=3)
            resources, outcomes = await gateway.search("labs", "Observation?patient=p1", 300)
            assert [o.entries for o in outcomes] == [1000]
            return resources

    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        first = router.get(f"{BASE}/Observation", params={"patient": "p1"}).mock(
            return_value=httpx.Response(200, json=page)
        )
        second = router.get(f"{BASE}/Observation", params={"page": "2"}).mock(
            return_value=httpx.Response(200, json=page)
        )
        resources = asyncio.run(search())
    assert [r["id"] for r in resources] == [f"o{i}" for i in range(300)]
    assert (first.call_count, second.call_count) == (1, 0)


def test_a_cookie_set_by_the_fhir_server_is_not_sent_with_a_later_call(
    client: TestClient, knowledge: Knowledge
) -> None:
    """The FHIR clients are shared by all calls: a session cookie from one clinician's call must not go out with
    the next call, made with another clinician's token."""
    seen: list[str | None] = []
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        routes = fhir_routes(router, knowledge, "partner-missing", BASE)
        for route in routes.values():
            answer = route.side_effect

            def with_cookie(request: httpx.Request, answer: Any = answer) -> httpx.Response:
                seen.append(request.headers.get("Cookie"))
                response: httpx.Response = answer(request)
                response.headers["Set-Cookie"] = "SESSION=clinician-a; Path=/; Secure; HttpOnly"
                return response

            route.side_effect = with_cookie
        first = fallback_request(knowledge, "partner-missing", BASE)
        _call(client, first)
        _call(client, {**first, "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea"})
    per_call = len(knowledge.registry[SIGN].prefetch)
    assert len(seen) == 2 * per_call
    assert seen == [None] * len(seen)
