"""A second, independent FHIR server: Medplum's router (npm) over its in-memory repository. Each scenario of a
sample is loaded into an emptied server, then sent with prefetch (the simulator's GET searches), without it (the
service reads Medplum itself with the access token) and as the Sandbox does it (order-select, prefetch by
form-encoded ``POST _search``). All three must give the manifest's cards.

The sample is the sekmet module's order-select sample plus a scenario for every prefetch key it leaves out and for
the other codings (ICD-10, SI units). Medplum's memory search reads every stored resource, so a server holding
all scenarios answers an Observation search in about a second: each scenario gets an empty server instead.
"""

from __future__ import annotations

import pytest
import requests

from cds_service.cli import fixtures, send_hook
from tests.integration.conftest import ClientKey, FhirServer, cli
from tests.integration.test_sekmet_scenarios import SELECT, SELECT_SAMPLE, cards, common, parse
from tests.support import REPO, manifest

pytestmark = pytest.mark.integration

EXPECTED = {
    s["name"]: {(c["rule_id"], c["indicator"]) for c in s["expected_cards"] or []} for s in manifest()["scenarios"]
}
SAMPLE = (
    *SELECT_SAMPLE,
    "ddi-no-grapefruit-near-miss",  # allergies and nutrition orders
    "ddi-grapefruit-diet-order",
    "ddi-st-johns-wort-otc",  # a MedicationStatement
    "prior-progression-on-palbociclib",  # medication history, disease status
    "prior-esr1-variant-on-ai-palbociclib",  # ESR1 variant report
    "safety-hepatic-child-pugh-c",
    "indication-stage-iv-observation",  # staging
    "safety-breastfeeding",  # reproductive status
    "cbc-febrile-neutropenia",  # temperature
    "partner-postmenopausal-by-amenorrhoea-and-labs",  # hormones
    "cbc-anc-grade2-si-unit",  # SI units, chemistry
    "partner-oophorectomy-letrozole",  # procedures
    "receptor-icd-hr-positive-her2-negative",  # ICD-10 codes
    "safety-renal-crcl-22",
)
MODES = {"prefetch": (), "no-prefetch": ("--no-prefetch",), "select": SELECT}


def empty(server: FhirServer) -> None:
    assert requests.post(f"{server.base.removesuffix('/fhir')}/_reset", timeout=10).status_code == 200


def empty_and_load(server: FhirServer, name: str) -> None:
    empty(server)
    _, found = fixtures.scenarios(REPO / "fhir_fixtures")
    [scenario] = [s for s in found if s.name == name]
    loaded = fixtures.load_one(scenario, server.base, server.token, 0, 30)
    assert loaded.ok, loaded.problem


def test_sample_names_scenarios() -> None:
    assert set(SAMPLE) <= set(EXPECTED)
    assert len(set(SAMPLE)) == len(SAMPLE)


def test_fixtures_load_reports_medplum_s_answers(medplum: FhirServer) -> None:
    empty(medplum)
    result = cli(
        "fixtures", "load", "--fhir-base", medplum.base, "--token", medplum.token, "--scenario", "clean-base-order"
    )
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("clean-base-order:"))
    assert "-> HTTP 200 [16 x 200]" in line, line  # Medplum answers a creating PUT with 200, HAPI with 201
    assert medplum.get("Patient/base-pat")["id"] == "base-pat"


@pytest.mark.parametrize("name", SAMPLE)
def test_scenario_same_cards_three_ways_against_medplum(
    service: str, medplum: FhirServer, client_key: ClientKey, name: str
) -> None:
    empty_and_load(medplum, name)
    base = common(service, medplum, client_key)
    results: dict[str, send_hook.Exchange] = {}
    for mode, extra in MODES.items():
        exchange = send_hook.simulate(parse(*base, "--scenario", name, *extra))
        assert exchange.status == 200, f"{mode}: {exchange.problems}"
        assert exchange.problems == [], f"{mode}: {exchange.problems}"
        results[mode] = exchange
    assert results["prefetch"].notes == []  # every prefetch key filled, none paged or failed
    assert "prefetch" not in results["no-prefetch"].request
    assert cards(results["prefetch"]) == cards(results["no-prefetch"]), "prefetch and FHIR fallback disagree"
    for mode, exchange in results.items():
        assert cards(exchange, "warning") == EXPECTED[name], mode


def test_the_service_s_own_reads_carried_the_token(medplum: FhirServer) -> None:
    """The adapter refuses a request without the Bearer token, so the fallback above read with it."""
    answer = requests.get(f"{medplum.base}/Patient?_count=1", timeout=10)
    assert answer.status_code == 401
    assert answer.json()["issue"][0]["code"] == "login"
