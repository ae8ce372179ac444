"""Shifted fixture dates end to end, on their own sekmet-fhir server.

1. ``fixtures load --shift-to-today`` moves every date by (today - reference date) whole days on the server.
2. The dated scenarios (blood counts, pregnancy tests, the base order), loaded with a 200-day shift by the same
   loader code, give exactly the manifest's cards from a service whose clock is 200 days after the reference
   time, through ``send-hook --scenario`` (which sends the drafts as the server holds them). Unshifted they
   would not: most of these rules look at how old a result is. A fixed 200 days makes the check independent
   of the day the tests run.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from cds_service.cli import fixtures, send_hook
from tests.integration.conftest import ClientKey, cli, running_sekmet, running_service
from tests.support import FIXTURES, REFERENCE_TIME, manifest

pytestmark = pytest.mark.integration

SCENARIOS = {
    s["name"]: s
    for s in manifest()["scenarios"]
    if s["name"].startswith(("cbc-", "safety-pregnancy")) or s["name"] == "clean-base-order"
}


SHIFT = 200


class Shifted:
    def __init__(self) -> None:
        self.days = 0
        self.load: Any = None
        self.stored: dict[tuple[str, str], dict[str, Any]] = {}
        self.results: dict[str, send_hook.Exchange | str] = {}

    @staticmethod
    def clock() -> datetime:
        return REFERENCE_TIME + timedelta(days=SHIFT)


def _clean_base_order() -> dict[tuple[str, str], dict[str, Any]]:
    record = json.loads((FIXTURES / "clean-base-order.json").read_text())
    return {(e["resource"]["resourceType"], e["resource"]["id"]): e["resource"] for e in record["entry"]}


@pytest.fixture(scope="module")
def shifted(tmp_path_factory: pytest.TempPathFactory, client_key: ClientKey) -> Iterator[Shifted]:
    state = Shifted()
    with (
        running_sekmet(tmp_path_factory.mktemp("sekmet-shifted")) as fhir,
        running_service(tmp_path_factory.mktemp("service-shifted"), client_key, state.clock) as service,
    ):
        state.load = cli(
            "fixtures", "load", "--fhir-base", fhir.base, "--token", fhir.token, "--shift-to-today",
            "--scenario", "clean-base-order",
        )  # fmt: skip
        moved = re.search(r"dates moved by ([+-]\d+) days", state.load.stdout)
        assert moved, state.load.stdout + state.load.stderr
        state.days = int(moved[1])
        state.stored = {(kind, rid): fhir.get(f"{kind}/{rid}") for kind, rid in _clean_base_order()}

        _reference, found = fixtures.scenarios(FIXTURES)
        loads = [fixtures.load_one(s, fhir.base, fhir.token, SHIFT, 60) for s in found if s.name in SCENARIOS]
        assert all(result.ok for result in loads), [result.line() for result in loads if not result.ok]
        parser = argparse.ArgumentParser()
        send_hook.add_arguments(parser)
        base = ["--service-base", service, "--fhir-base", fhir.base, "--token", fhir.token]
        base += ["--sign-key", str(client_key.path), "--iss", client_key.iss, "--fixtures-dir", str(FIXTURES)]

        def run(name: str) -> send_hook.Exchange | str:
            try:
                return send_hook.simulate(parser.parse_args([*base, "--scenario", name]))
            except (send_hook.UsageError, send_hook.ProtocolError) as exc:
                return str(exc)

        with ThreadPoolExecutor(max_workers=6) as pool:
            state.results = dict(zip(SCENARIOS, pool.map(run, SCENARIOS), strict=True))
        yield state


def test_the_shift_is_today_minus_the_reference_date(shifted: Shifted) -> None:
    assert shifted.load.returncode == 0, shifted.load.stderr
    assert abs(shifted.days - fixtures.days_to_today(REFERENCE_TIME)) <= 1  # a run across midnight UTC
    assert "loaded 1 of 1 scenarios" in shifted.load.stdout


def test_dates_on_the_server_moved_ids_did_not(shifted: Shifted) -> None:
    delta = timedelta(days=shifted.days)
    for (kind, rid), original in _clean_base_order().items():
        stored = shifted.stored[(kind, rid)]
        assert stored["id"] == rid
        if kind == "Patient":
            assert date.fromisoformat(stored["birthDate"]) == date.fromisoformat(original["birthDate"]) + delta
        if kind == "Observation":
            moved = datetime.fromisoformat(stored["effectiveDateTime"])
            assert moved == datetime.fromisoformat(original["effectiveDateTime"]) + delta
        if kind == "MedicationRequest" and original.get("status") == "draft":
            assert stored["authoredOn"] == fixtures.shift_date_value(original["authoredOn"], shifted.days)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_shifted_scenario_gives_the_manifest_cards(shifted: Shifted, name: str) -> None:
    exchange = shifted.results[name]
    assert isinstance(exchange, send_hook.Exchange), exchange
    assert exchange.problems == []
    assert exchange.notes == []  # the drafts came from the server, shifted like the record
    record = json.loads((FIXTURES / SCENARIOS[name]["file"]).read_text())
    drafts = {e["resource"]["id"]: e["resource"] for e in record["entry"] if e["resource"].get("status") == "draft"}
    for entry in exchange.request["context"]["draftOrders"]["entry"]:
        sent = entry["resource"]
        if sent["id"] in drafts and "authoredOn" in sent:
            assert sent["authoredOn"] == fixtures.shift_date_value(drafts[sent["id"]]["authoredOn"], SHIFT)
    order = {"info": 0, "warning": 1, "critical": 2}
    got = {(send_hook.rule_id(c), c["indicator"]) for c in exchange.body["cards"] if order[c["indicator"]] >= 1}
    assert got == {(c["rule_id"], c["indicator"]) for c in SCENARIOS[name]["expected_cards"] or []}
