"""The auditor web page in a real browser: Chromium (headless, through playwright) against the real app
served by uvicorn on a free port, with the log filled through the real hook and feedback endpoints.

Checks sign-in (refused, then accepted), filtering by rule, one call in full (card, indicator, evidence),
the clinician's override with its reason and comment (shown as text, never as markup), the per-rule
chart, the export links, sign-out, and that the API refuses a browser without a session. Saves a
full-page screenshot to build/screenshots/audit-page.png for people to look at."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from cds_service.app import create_app
from cds_service.audit.auditors import hash_password
from cds_service.knowledge import Knowledge
from cds_service.settings import Settings
from tests.conftest import fixed_clock
from tests.support import REPO, SIGN, hook_request, uvicorn_in_thread

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = REPO / "build" / "screenshots" / "audit-page.png"
AUDITOR = ("alice", "correct horse battery staple")
OVERRIDE_REASON = "Patient is treated on a clinical trial protocol"
# Free text from the EHR, with markup that must show as text and never run.
COMMENT = 'Enrolled on NCT04862663; letrozole comes from the trial pharmacy <img src=x onerror="window.__xss=1">'
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} to drive the auditor page"),
]


@dataclass(frozen=True)
class Service:
    url: str
    rules: set[str]


def _fill_log(url: str, knowledge: Knowledge) -> set[str]:
    """Hook calls and one override through the real endpoints; the rule ids of the cards issued."""
    missing_data = hook_request(knowledge, "clean-base-order", drop=("cbc", "receptors"))
    missing_data["hookInstance"] = "test-data-unavailable"
    requests = [
        hook_request(knowledge, "partner-missing"),
        hook_request(knowledge, "receptor-her2-positive-icd"),
        hook_request(knowledge, "clean-base-order"),
        missing_data,
    ]
    rules: set[str] = set()
    cards: dict[str, dict[str, Any]] = {}
    with httpx.Client(base_url=url, timeout=10) as client:
        for request in requests:
            response = client.post(f"/cds-services/{SIGN}", json=request)
            assert response.status_code == 200, response.text
            for card in response.json()["cards"]:
                rule = card["source"]["topic"]["code"]
                rules.add(rule)
                cards[rule] = card
        feedback = {
            "card": cards["partner-missing"]["uuid"],
            "outcome": "overridden",
            "outcomeTimestamp": "2026-11-20T15:09:00Z",
            "overrideReason": {
                "reason": {
                    "code": "clinical-trial",
                    "system": "urn:palbociclib-cds:override-reason",
                    "display": OVERRIDE_REASON,
                },
                "userComment": COMMENT,
            },
        }
        stored = client.post(f"/cds-services/{SIGN}/feedback", json={"feedback": [feedback]})
        assert stored.json()["stored"] == 1, stored.text
    assert {"partner-missing", "receptor-her2-positive"} <= rules
    return rules


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, knowledge: Knowledge) -> Iterator[Service]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("audit-page"),
        cards_dir=REPO / "cards",
        audit_cookie_secure=False,
        auditors={AUDITOR[0]: hash_password(AUDITOR[1], iterations=1000)},
    )
    with uvicorn_in_thread(create_app(settings, clock=fixed_clock), lifespan="on") as url:
        yield Service(url, _fill_log(url, knowledge))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def _context(browser: Any, url: str, **options: Any) -> Any:
    """A browser context that cannot hang on the API's Basic challenge.

    The API answers 401 with ``WWW-Authenticate: Basic``; Chromium then holds the request open for its
    own sign-in prompt, which never comes in headless mode (and closing the context then hangs too).
    With credentials configured, playwright answers the challenge once with these unknown ones, the API
    refuses them, and the page gets its 401."""
    context = browser.new_context(
        base_url=url, http_credentials={"username": "no-such-auditor", "password": "-"}, **options
    )
    context.set_default_timeout(5000)
    return context


def _fetch_status(page: Any, path: str) -> Any:
    """The status of a same-origin fetch() from the page (cookies included), or "timeout"."""
    script = """path => Promise.race([
        fetch(path).then(response => response.status),
        new Promise(resolve => setTimeout(() => resolve("timeout"), 5000)),
    ])"""
    return page.evaluate(script, path)


def test_auditor_page_in_a_browser(service: Service, browser: Any) -> None:
    from playwright.sync_api import expect

    context = _context(browser, service.url, viewport={"width": 1360, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    try:
        # Strangers land on the sign-in page; a wrong password says so.
        page.goto("/audit/")
        expect(page).to_have_url(f"{service.url}/audit/login")
        expect(page.get_by_role("heading", name="Audit log sign-in")).to_be_visible()
        expect(page.get_by_role("alert")).to_be_hidden()
        page.get_by_label("User name").fill(AUDITOR[0])
        page.get_by_label("Password").fill("not the password")
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(f"{service.url}/audit/login?failed=1")
        expect(page.get_by_role("alert")).to_contain_text("Sign-in failed")

        # Signing in opens the page: the auditor, the chain status, every call.
        page.get_by_label("User name").fill(AUDITOR[0])
        page.get_by_label("Password").fill(AUDITOR[1])
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(f"{service.url}/audit/")
        expect(page.locator("#auditor-name")).to_have_text(AUDITOR[0])
        expect(page.locator("#chain-status")).to_have_text(re.compile(r"Log intact: \d+ records"))
        rows = page.locator("#calls tbody tr")
        expect(rows).to_have_count(4)
        expect(page.locator("#page-info")).to_have_text("Page 1 of 1, 4 calls")

        # A date range after every call leaves none, and the export links follow the range.
        page.get_by_label("From").fill("2100-01-01T00:00")
        page.get_by_role("button", name="Apply filters").click()
        expect(page.locator("#page-info")).to_have_text("Page 1 of 1, 0 calls")
        expect(rows).to_have_text(["No hook calls match these filters."])
        expect(page.get_by_role("link", name="CSV")).to_have_attribute(
            "href", "/audit/api/export?format=csv&start=2100-01-01T00%3A00%3A00Z"
        )
        page.get_by_role("button", name="Clear").click()
        expect(page.locator("#page-info")).to_have_text("Page 1 of 1, 4 calls")

        # Filtering by rule leaves exactly the HER2-positive call.
        page.get_by_label("Rule", exact=True).select_option("receptor-her2-positive")
        page.get_by_role("button", name="Apply filters").click()
        expect(page.locator("#page-info")).to_have_text("Page 1 of 1, 1 call")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("rh2c-pat")
        expect(rows.first.locator(".badge-critical")).to_have_text("Critical")

        # Its detail: the card as the clinician saw it, and the evidence.
        rows.first.get_by_role("button").click()
        card = page.locator("#detail article.cds-card").first
        expect(card.locator(".card-summary")).to_have_text(
            "Tumour is HER2-positive: palbociclib is indicated only for HER2-negative disease"
        )
        expect(card.locator(".card-head .badge")).to_have_text("Critical")
        expect(card.locator(".card-head .rule-id")).to_have_text("receptor-her2-positive")
        expect(card.locator("table.evidence tbody")).to_contain_text("Z17.31")
        expect(card.locator(".card-detail table")).to_be_visible()  # the Markdown table, rendered
        expect(page.locator("#detail dl.facts")).to_contain_text("test-receptor-her2-positive-icd")

        # The partner-missing call: the clinician's override, its reason and comment, as text.
        page.get_by_label("Rule", exact=True).select_option("partner-missing")
        page.get_by_role("button", name="Apply filters").click()
        expect(page.locator("#page-info")).to_have_text("Page 1 of 1, 1 call")
        expect(rows.first.locator(".response-overridden")).to_be_visible()
        rows.first.get_by_role("button").press("Enter")  # the keyboard opens a call too
        expect(page.locator("#detail-heading")).to_be_focused()
        expect(page.locator("#detail-heading")).to_contain_text("patient pmis-pat")
        feedback = page.locator("#detail table.feedback tbody tr")
        expect(feedback).to_have_count(1)
        expect(feedback.locator(".response")).to_have_text("Overridden")
        expect(feedback.locator(".override-reason")).to_contain_text(OVERRIDE_REASON)
        expect(feedback.locator(".override-comment")).to_have_text(COMMENT)
        assert feedback.locator("img").count() == 0
        assert page.evaluate("window.__xss") is None

        # The chart: one bar per rule; the table below it lists the override reason.
        bars = page.locator("#rule-chart svg g.bar")
        expect(bars).to_have_count(len(service.rules))
        assert {bars.nth(i).get_attribute("data-rule") for i in range(len(service.rules))} == service.rules
        expect(page.locator("#rule-table tr[data-rule='partner-missing']")).to_contain_text(f"{OVERRIDE_REASON} (1)")

        # Export links for the date range, downloadable with the session.
        for name, kind in (("NDJSON", "ndjson"), ("CSV", "csv"), ("FHIR AuditEvent Bundle", "fhir")):
            href = page.get_by_role("link", name=name).get_attribute("href")
            assert href == f"/audit/api/export?format={kind}"
            assert context.request.get(href).status == 200

        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        assert not problems, problems

        # Signing out ends the session: the page and the API refuse this browser.
        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(f"{service.url}/audit/login")
        assert _fetch_status(page, "/audit/api/invocations") == 401
        assert context.request.get("/audit/api/invocations").status == 401
        page.goto("/audit/")  # the browser may show its cached copy: the page itself then goes to sign-in
        expect(page).to_have_url(re.compile(r"/audit/login(\?expired=1)?$"))
        expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    finally:
        context.close()


def test_api_refuses_a_browser_without_a_session(service: Service, browser: Any) -> None:
    context = _context(browser, service.url)
    try:
        page = context.new_page()
        page.goto("/audit/login")
        assert _fetch_status(page, "/audit/api/invocations") == 401
        assert context.request.get("/audit/api/invocations").status == 401
    finally:
        context.close()
