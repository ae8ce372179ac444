"""Structural checks for the clinical-scenario fixtures in fhir_fixtures/.

Each scenario is one FHIR R4 Bundle (parsed with fhir.resources.R4B, which reads R4 JSON) and is listed in
fhir_fixtures/scenarios*.yaml. These tests check the fixtures themselves, not the CDS service.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle

from cds_service.scenarios import load_manifest

FIXTURES = Path(__file__).resolve().parent.parent / "fhir_fixtures"
MANIFEST = load_manifest(FIXTURES)
SCENARIOS: list[dict[str, Any]] = MANIFEST["scenarios"]
NAMES = [s["name"] for s in SCENARIOS]
REFERENCE_TIME = datetime.fromisoformat(MANIFEST["reference_time"].replace("Z", "+00:00"))

# Scenarios without a palbociclib draft order.
NO_PALBOCICLIB_DRAFT = {"no-palbociclib-order"}

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
# palbociclib ingredient and every palbociclib-containing RxCUI named in clinical-brief §6.1.
PALBOCICLIB_RXCUIS = {
    "1601374",
    "1601377",
    "1601378",
    "1601379",
    "1601380",
    "1601383",
    "1601384",
    "1601385",
    "1601386",
    "1601388",
    "1601390",
    "1601392",
    "1601394",
    "2284101",
    "2284102",
    "2284103",
    "2284104",
    "2284105",
    "2284106",
    "2284107",
    "2284108",
}
PALBOCICLIB_WORDS = re.compile(r"palbociclib|ibrance", re.IGNORECASE)

ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
DATE_RE = re.compile(
    r"^(?P<y>\d{4})(-(?P<m>\d{2})(-(?P<d>\d{2})(T(?P<time>\d{2}:\d{2}(:\d{2}(\.\d+)?)?)(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
# FHIR elements of type date / dateTime / instant used in these fixtures, plus Period.start/end.
DATE_KEYS = {
    "timestamp",
    "birthDate",
    "authoredOn",
    "recordedDate",
    "dateAsserted",
    "issued",
    "lastUpdated",
    "date",
    "start",
    "end",
    "occurrenceDateTime",
    "onsetDateTime",
    "abatementDateTime",
    "effectiveDateTime",
    "effectiveInstant",
    "valueDateTime",
    "deceasedDateTime",
}

ALLOWED_INDICATORS = {"warning", "critical"}


def load(name: str) -> dict[str, Any]:
    with (FIXTURES / f"{name}.json").open(encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", [])]


def walk(node: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """Yield (path, key, value) for every key in a JSON tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            p = f"{path}.{k}" if path else k
            yield p, k, v
            yield from walk(v, p)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{path}[{i}]")


def earliest_instant(value: str) -> datetime:
    """The first instant a FHIR date/dateTime/instant can denote (partial dates start at their beginning)."""
    m = DATE_RE.match(value)
    assert m, f"not a FHIR date/dateTime: {value!r}"
    if m["time"]:
        assert m["tz"], f"dateTime with a time needs a time zone: {value!r}"
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return datetime(int(m["y"]), int(m["m"] or 1), int(m["d"] or 1), tzinfo=UTC)


def medication_names_palbociclib(med_req: dict[str, Any], bundle: dict[str, Any]) -> bool:
    """True when the MedicationRequest names palbociclib by RxNorm code or by text, directly or through a
    contained or bundled Medication."""
    concepts: list[dict[str, Any]] = []
    if "medicationCodeableConcept" in med_req:
        concepts.append(med_req["medicationCodeableConcept"])
    ref = med_req.get("medicationReference", {})
    if ref:
        target = resolve(ref.get("reference", ""), med_req, bundle)
        assert target is not None, f"{med_req['id']}: unresolved medicationReference {ref}"
        concepts.append(target.get("code", {}))
        concepts.extend(i.get("itemCodeableConcept", {}) for i in target.get("ingredient", []))
        if PALBOCICLIB_WORDS.search(ref.get("display", "")):
            return True
    for c in concepts:
        if PALBOCICLIB_WORDS.search(c.get("text", "")):
            return True
        for coding in c.get("coding", []):
            if coding.get("system") == RXNORM and coding.get("code") in PALBOCICLIB_RXCUIS:
                return True
            if PALBOCICLIB_WORDS.search(coding.get("display", "")):
                return True
    return False


def resolve(reference: str, owner: dict[str, Any], bundle: dict[str, Any]) -> dict[str, Any] | None:
    if reference.startswith("#"):
        return next((c for c in owner.get("contained", []) if c.get("id") == reference[1:]), None)
    rtype, _, rid = reference.partition("/")
    return next((r for r in resources(bundle) if r["resourceType"] == rtype and r.get("id") == rid), None)


# --------------------------------------------------------------------------- manifest


def test_manifest_lists_exactly_the_fixture_files() -> None:
    on_disk = sorted(p.name for p in FIXTURES.glob("*.json"))
    listed = sorted(s["file"] for s in SCENARIOS)
    assert listed == on_disk
    assert len(set(NAMES)) == len(NAMES), "duplicate scenario names"
    for s in SCENARIOS:
        assert s["file"] == f"{s['name']}.json"


def test_manifest_reference_time() -> None:
    assert MANIFEST["reference_time"] == "2026-11-20T15:00:00Z"


@pytest.mark.parametrize("scenario", SCENARIOS, ids=NAMES)
def test_manifest_entry_shape(scenario: dict[str, Any]) -> None:
    assert set(scenario) >= {"name", "file", "title", "meaning", "brief_behaviour", "expected_cards"}
    assert isinstance(scenario["title"], str)
    assert scenario["title"]
    assert isinstance(scenario["meaning"], str)
    assert scenario["meaning"]
    bb = scenario["brief_behaviour"]
    assert bb is None or (isinstance(bb, int) and 1 <= bb <= 54)
    assert isinstance(scenario["expected_cards"], list)
    for c in scenario["expected_cards"]:
        assert set(c) == {"rule_id", "indicator"}
        assert isinstance(c["rule_id"], str)
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", c["rule_id"])
        assert c["indicator"] in ALLOWED_INDICATORS


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("name", NAMES, ids=NAMES)
def test_bundle_parses_as_r4b_bundle(name: str) -> None:
    data = load(name)
    bundle = Bundle.model_validate(data)
    assert bundle.id == name
    assert bundle.type == "collection"
    assert data["timestamp"] == MANIFEST["reference_time"]
    assert data.get("entry"), "empty bundle"
    for entry in data["entry"]:
        assert "fullUrl" not in entry, "convention: no fullUrl; resources reference each other as Type/id"
        assert set(entry) == {"resource"}


@pytest.mark.parametrize("name", NAMES, ids=NAMES)
def test_every_entry_parses_with_its_r4b_model(name: str) -> None:
    for res in resources(load(name)):
        model = get_fhir_model_class(res["resourceType"])
        parsed = model.model_validate(res)
        assert parsed.id == res["id"]  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- ids


def test_ids_unique_across_all_fixtures() -> None:
    counts: Counter[str] = Counter()
    for name in NAMES:
        for res in resources(load(name)):
            counts[res["id"]] += 1
    dupes = sorted(i for i, n in counts.items() if n > 1)
    assert not dupes, f"ids used more than once: {dupes}"


@pytest.mark.parametrize("name", NAMES, ids=NAMES)
def test_ids_are_valid_and_share_the_scenario_tag(name: str) -> None:
    res = resources(load(name))
    patients = [r for r in res if r["resourceType"] == "Patient"]
    assert len(patients) == 1
    tag = patients[0]["id"].split("-", 1)[0]
    for r in res:
        assert ID_RE.fullmatch(r["id"]), f"bad id {r['id']!r}"
        assert r["id"].startswith(f"{tag}-"), f"{r['id']!r} lacks the scenario tag {tag!r}"
        for c in r.get("contained", []):
            assert ID_RE.fullmatch(c["id"])


def test_scenario_tags_are_distinct() -> None:
    tags = []
    for name in NAMES:
        pat = next(r for r in resources(load(name)) if r["resourceType"] == "Patient")
        tags.append(pat["id"].split("-", 1)[0])
    assert len(set(tags)) == len(tags)


# --------------------------------------------------------------------------- dates


@pytest.mark.parametrize("name", NAMES, ids=NAMES)
def test_every_date_is_at_or_before_the_reference_time(name: str) -> None:
    checked = 0
    for path, key, value in walk(load(name)):
        if key in DATE_KEYS and isinstance(value, str):
            assert earliest_instant(value) <= REFERENCE_TIME, f"{path} = {value} is after the reference time"
            checked += 1
    assert checked > 0


# --------------------------------------------------------------------------- orders


@pytest.mark.parametrize("name", NAMES, ids=NAMES)
def test_exactly_one_palbociclib_draft(name: str) -> None:
    bundle = load(name)
    drafts = [r for r in resources(bundle) if r["resourceType"] == "MedicationRequest" and r["status"] == "draft"]
    palbo = [d for d in drafts if medication_names_palbociclib(d, bundle)]
    if name in NO_PALBOCICLIB_DRAFT:
        assert not palbo
        assert drafts, "the scenario still has a (non-palbociclib) draft order"
    else:
        assert len(palbo) == 1, [d["id"] for d in palbo]
        assert palbo[0]["intent"] == "order"


@pytest.mark.parametrize("scenario", SCENARIOS, ids=NAMES)
def test_palbociclib_outside_drafts_only_where_declared(scenario: dict[str, Any]) -> None:
    """Only the draft names palbociclib, unless the manifest marks the scenario `palbociclib_on_record: true`
    (duplicate, renewal, prior-therapy and on-treatment scenarios); such a scenario must then hold
    palbociclib outside its draft."""
    bundle = load(scenario["name"])
    on_record = [
        r["id"]
        for r in resources(bundle)
        if r["resourceType"] in {"MedicationRequest", "MedicationStatement"}
        and r["status"] != "draft"
        and medication_names_palbociclib(r, bundle)
    ]
    assert bool(on_record) == bool(scenario.get("palbociclib_on_record")), on_record


# --------------------------------------------------------------------------- references


@pytest.mark.parametrize("name", NAMES, ids=NAMES)
def test_patient_references_point_at_the_bundle_patient(name: str) -> None:
    bundle = load(name)
    patient_id = next(r["id"] for r in resources(bundle) if r["resourceType"] == "Patient")
    seen = 0
    for path, key, value in walk(bundle):
        if key == "reference" and isinstance(value, str) and value.startswith("Patient/"):
            assert value == f"Patient/{patient_id}", f"{path} = {value}"
            seen += 1
    assert seen > 0


@pytest.mark.parametrize("name", NAMES, ids=NAMES)
def test_every_reference_resolves_inside_the_bundle(name: str) -> None:
    bundle = load(name)
    for res in resources(bundle):
        for path, key, value in walk(res):
            if key == "reference" and isinstance(value, str):
                assert resolve(value, res, bundle) is not None, f"{res['id']}: {path} = {value} does not resolve"
