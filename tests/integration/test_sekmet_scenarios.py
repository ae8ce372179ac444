"""Every scenario, end to end over HTTP: ``fixtures load`` into a real FHIR server (sekmet-fhir), then
``send-hook --scenario NAME`` with prefetch (run by the simulator against the FHIR server) and with
``--no-prefetch`` (the service reads the FHIR server itself, with the access token it was handed). Both ways must
give the same cards, and the warning and critical ones must be the manifest's.

The hooks run concurrently (a thread pool) so the whole module stays well under two minutes.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from cds_service.cli import send_hook
from tests.integration.conftest import ClientKey, FhirServer, cli, make_key
from tests.support import REPO, manifest

pytestmark = pytest.mark.integration

SCENARIOS = manifest()["scenarios"]
NAMES = [s["name"] for s in SCENARIOS]
ORDER = {"info": 0, "warning": 1, "critical": 2}
MODES = {"prefetch": (), "no-prefetch": ("--no-prefetch",)}
# The Sandbox's own way (order-select, prefetch by form-encoded POST _search) on one scenario per rule family and
# the ones whose orders are shaped differently (order set, contained or bundled Medication, no palbociclib).
SELECT = ("--hook", "order-select", "--post-search")
SELECT_SAMPLE = (
    "clean-base-order",
    "receptor-her2-positive-ihc",
    "partner-draft-in-order-set",
    "partner-fulvestrant-contained-medication",
    "palbociclib-bundled-medication",
    "cbc-neutropenia-grade4",
    "ddi-strong-inhibitor-ketoconazole",
    "dose-above-maximum-150mg",
    "indication-no-breast-cancer",
    "safety-pregnancy-positive-hcg",
    "realistic-full-record",
    "no-palbociclib-order",
)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    send_hook.add_arguments(parser)
    return parser.parse_args(list(argv))


def common(service: str, sekmet: FhirServer, key: ClientKey) -> list[str]:
    return [
        "--service-base", service,
        "--fhir-base", sekmet.base,
        "--token", sekmet.token,
        "--sign-key", str(key.path),
        "--iss", key.iss,
        "--fixtures-dir", str(REPO / "fhir_fixtures"),
        # Longer than the service's 20 s deadline (conftest): with six hooks queued at one single-process FHIR
        # server the simulator's 10 s default could give up on a call the service is still answering.
        "--timeout", "30",
    ]  # fmt: skip


def cards(exchange: send_hook.Exchange, at_least: str = "info") -> set[tuple[str, str]]:
    body = exchange.body if isinstance(exchange.body, dict) else {}
    return {
        (send_hook.rule_id(c), c["indicator"])
        for c in body.get("cards") or []
        if ORDER[c["indicator"]] >= ORDER[at_least]
    }


Run = Callable[[str, str], send_hook.Exchange | str]


@pytest.fixture(scope="module")
def exchanges(
    service: str, sekmet: FhirServer, client_key: ClientKey, loaded: Any
) -> dict[tuple[str, str], send_hook.Exchange | str]:
    """Every scenario in every mode, run at once: (scenario, mode) -> the exchange, or why it failed."""
    base = common(service, sekmet, client_key)

    def run(job: tuple[str, str]) -> send_hook.Exchange | str:
        name, mode = job
        try:
            return send_hook.simulate(parse(*base, "--scenario", name, *(MODES.get(mode) or SELECT)))
        except (send_hook.UsageError, send_hook.ProtocolError) as exc:
            return f"{type(exc).__name__}: {exc}"

    jobs = [(name, mode) for name in NAMES for mode in MODES] + [(name, "select") for name in SELECT_SAMPLE]
    with ThreadPoolExecutor(max_workers=6) as pool:
        return dict(zip(jobs, pool.map(run, jobs), strict=True))


def test_select_sample_names_scenarios() -> None:
    assert set(SELECT_SAMPLE) <= set(NAMES)


def test_fixtures_load_every_scenario(loaded: Any) -> None:
    assert loaded.returncode == 0, f"{loaded.stdout}\n{loaded.stderr}"
    lines = {line.split(":", 1)[0]: line for line in loaded.stdout.splitlines()}
    for name in NAMES:
        assert name in lines, f"{name} not loaded"
        assert "-> HTTP 200 [" in lines[name], lines[name]
        assert "FAILED" not in lines[name]
    assert f"loaded {len(NAMES)} of {len(NAMES)} scenarios" in loaded.stdout


def test_fixtures_load_again_updates_in_place(sekmet: FhirServer, loaded: Any) -> None:
    record = json.loads((REPO / "fhir_fixtures" / "clean-base-order.json").read_text())
    resources = [e["resource"] for e in record["entry"]]
    patient = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    observations = sum(r["resourceType"] == "Observation" for r in resources)
    again = cli("fixtures", "load", "--fhir-base", sekmet.base, "--token", sekmet.token, "--scenario", record["id"])
    assert again.returncode == 0, again.stderr
    line = next(x for x in again.stdout.splitlines() if x.startswith("clean-base-order:"))
    assert f"[{len(resources)} x 200]" in line  # every entry updated, none created
    assert sekmet.get(f"Observation?patient={patient}&_summary=count")["total"] == observations
    assert sekmet.get(f"Patient?_id={patient}&_summary=count")["total"] == 1


@pytest.mark.parametrize("name", NAMES)
def test_scenario_same_cards_with_prefetch_and_fhir_fallback(
    exchanges: dict[tuple[str, str], send_hook.Exchange | str], name: str
) -> None:
    entry = next(s for s in SCENARIOS if s["name"] == name)
    expected = {(c["rule_id"], c["indicator"]) for c in entry["expected_cards"] or []}
    results = {mode: exchanges[(name, mode)] for mode in [*MODES, "select"] if (name, mode) in exchanges}
    for mode, exchange in results.items():
        assert isinstance(exchange, send_hook.Exchange), f"{mode}: {exchange}"
        assert exchange.status == 200, f"{mode}: {exchange.problems}"
        assert exchange.problems == [], f"{mode}: {exchange.problems}"
    prefetched, read = results["prefetch"], results["no-prefetch"]
    assert isinstance(prefetched, send_hook.Exchange)
    assert isinstance(read, send_hook.Exchange)
    assert "prefetch" not in read.request
    assert prefetched.notes == []  # every prefetch key filled, none paged or failed
    assert all(v is not None for v in prefetched.request["prefetch"].values())
    assert cards(prefetched) == cards(read), "prefetch and FHIR fallback disagree"
    for mode, exchange in results.items():
        assert isinstance(exchange, send_hook.Exchange)
        assert cards(exchange, "warning") == expected, mode
    required_info = {(c["rule_id"], "info") for c in entry.get("expected_info") or []}
    assert required_info <= cards(prefetched)


def test_simulator_command_prints_cards(service: str, sekmet: FhirServer, client_key: ClientKey, loaded: Any) -> None:
    base = common(service, sekmet, client_key)
    readable = cli("send-hook", *base, "--scenario", "receptor-her2-positive-ihc")
    assert readable.returncode == 0, readable.stderr
    assert "palbociclib-order-sign · HTTP 200 · 19 prefetch keys" in readable.stdout
    assert "CRITICAL [receptor-her2-positive] " in readable.stdout
    assert "suggestion: Cancel this palbociclib order (recommended)" in readable.stdout
    raw = cli("send-hook", *base, "--scenario", "partner-missing", "--no-prefetch", "--json")
    assert raw.returncode == 0, raw.stderr
    body = json.loads(raw.stdout)
    found = {(c["source"]["topic"]["code"], c["indicator"]) for c in body["cards"]}
    assert ("partner-missing", "warning") in found, [c.get("detail") for c in body["cards"]]


def test_simulator_with_an_order_file(
    service: str, sekmet: FhirServer, client_key: ClientKey, loaded: Any, tmp_path: Path
) -> None:
    """An order from a file, for a patient already on the server (the Sandbox's "Rx Sign" with a med)."""
    record = json.loads((REPO / "fhir_fixtures" / "receptor-er-pr-negative-icd.json").read_text())
    draft = next(e["resource"] for e in record["entry"] if e["resource"].get("status") == "draft")
    order = tmp_path / "order.json"
    order.write_text(json.dumps({**draft, "id": "sandbox-order-1"}))
    patient = draft["subject"]["reference"].split("/")[1]
    exchange = send_hook.simulate(
        parse(*common(service, sekmet, client_key), "--order", str(order), "--patient", patient)
    )
    assert exchange.problems == []
    assert cards(exchange, "warning") == {("receptor-er-negative", "critical")}


def test_untrusted_key_gets_401_and_exit_status_1(
    service: str, sekmet: FhirServer, client_key: ClientKey, tmp_path: Path
) -> None:
    rogue = make_key(tmp_path, kid=client_key.kid, name="rogue.json")  # same kid, other key
    base = common(service, sekmet, rogue)
    result = cli("send-hook", *base, "--scenario", "partner-missing")
    assert result.returncode == 1
    assert "discovery" in result.stderr
    assert "HTTP 401" in result.stderr


def test_no_data_at_all_is_412_with_its_operation_outcome(
    service: str, sekmet: FhirServer, client_key: ClientKey, loaded: Any
) -> None:
    """No prefetch and no token: the FHIR server refuses the service (401), so the service has no patient data
    and answers 412; the simulator prints the OperationOutcome and exits 1."""
    base = common(service, sekmet, client_key)
    token_at = base.index("--token")
    del base[token_at : token_at + 2]
    result = cli("send-hook", *base, "--scenario", "partner-missing", "--no-prefetch")
    assert result.returncode == 1
    assert "HTTP 412" in result.stderr
    assert "no patient data could be obtained" in result.stderr
