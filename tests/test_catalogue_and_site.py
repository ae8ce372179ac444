"""The card catalogue and the site configuration are checked at start-up; a bad entry stops the service."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from cds_service.app import create_app
from cds_service.catalogue import CatalogueError, load_catalogue, placeholders
from cds_service.knowledge import Knowledge, load_knowledge
from cds_service.render import CallContext, Renderer
from cds_service.rules.base import Finding
from cds_service.schemas.cards import Card
from cds_service.settings import Settings
from cds_service.site import SiteConfigError
from tests.support import REFERENCE_TIME, REPO, SIGN, hook_request, rule_ids

CARDS = REPO / "cards"


@pytest.fixture
def cards_copy(tmp_path: Path) -> Path:
    target = tmp_path / "cards"
    shutil.copytree(CARDS, target)
    return target


def _edit(path: Path, **changes: object) -> None:
    data = yaml.safe_load(path.read_text())
    data.update(changes)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_every_card_renders_with_its_example_params(knowledge: Knowledge) -> None:
    renderer = Renderer(knowledge.catalogue, knowledge.site, knowledge.version)
    call = CallContext("p1", "Practitioner/u1", None, REFERENCE_TIME.date())
    for rule_id, entry in knowledge.catalogue.entries.items():
        card = renderer.card(Finding(rule_id, entry.example_params), None, call)
        assert isinstance(card, Card)
        assert len(card.summary) < 140
        assert card.source.url, rule_id
        assert "{" not in card.summary, rule_id
        assert "{" not in (card.detail or ""), rule_id


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"summary": "Uses {unknown}"}, "placeholders not in params"),
        ({"summary": "x" * 140}, "fewer than 140"),
        ({"override_reasons": ["not-a-reason"]}, "override reasons"),
        ({"indicator": "severe"}, "indicator"),
        ({"rule_id": "another-id"}, "must match the file name"),
        ({"selection_behavior": None}, "selection_behavior"),
        ({"summary": "{0} positional"}, "plain name"),
        ({"surprise": True}, "surprise"),
    ],
    ids=[
        "unknown-placeholder",
        "summary-too-long",
        "unknown-override",
        "bad-indicator",
        "rule-id-mismatch",
        "suggestions-without-behaviour",
        "positional-placeholder",
        "unknown-field",
    ],
)
def test_bad_entries_are_refused(cards_copy: Path, change: dict[str, object], message: str) -> None:
    _edit(cards_copy / "partner-missing.yaml", **change)
    with pytest.raises(CatalogueError, match=message):
        load_knowledge(cards_copy)


def test_invalid_suggested_resource_is_refused(cards_copy: Path) -> None:
    path = cards_copy / "partner-missing.yaml"
    data = yaml.safe_load(path.read_text())
    data["suggestions"][0]["actions"][0]["resource"]["dosageInstruction"] = "twice"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(CatalogueError, match="not valid FHIR R4"):
        load_knowledge(cards_copy)


def test_missing_card_for_a_rule_is_refused(cards_copy: Path) -> None:
    (cards_copy / "receptor-her2-positive.yaml").unlink()
    with pytest.raises(CatalogueError, match="receptor-her2-positive"):
        load_knowledge(cards_copy)


def test_broken_yaml_is_refused(cards_copy: Path) -> None:
    (cards_copy / "partner-missing.yaml").write_text("rule_id: [unclosed")
    with pytest.raises(CatalogueError, match="not valid YAML"):
        load_catalogue(cards_copy)


def test_the_service_does_not_start_on_a_bad_catalogue(cards_copy: Path, tmp_path: Path) -> None:
    _edit(cards_copy / "partner-missing.yaml", summary="{nope}")
    with pytest.raises(CatalogueError, match=r"partner-missing\.yaml"):
        create_app(Settings(cards_dir=cards_copy, data_dir=tmp_path))


def test_placeholders_are_found() -> None:
    assert placeholders("a {x} b {y}") == {"x", "y"}
    assert placeholders("no fields, {{escaped}}") == set()


def _site(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(content))
    return path


def test_site_can_switch_a_card_off_and_change_an_indicator(
    make_client: object, knowledge: Knowledge, tmp_path: Path
) -> None:
    site = _site(
        tmp_path, {"cards": {"partner-missing": {"enabled": False}, "receptor-status-unknown": {"indicator": "info"}}}
    )
    client: TestClient = make_client(site_config=site)  # type: ignore[operator]
    body = client.post(f"/cds-services/{SIGN}", json=hook_request(knowledge, "partner-missing")).json()
    assert "partner-missing" not in {c["source"]["topic"]["code"] for c in body["cards"]}
    body = client.post(f"/cds-services/{SIGN}", json=hook_request(knowledge, "receptor-status-unknown")).json()
    assert rule_ids(body) == {("receptor-status-unknown", "info")}


def test_site_config_changes_the_knowledge_version(tmp_path: Path, knowledge: Knowledge) -> None:
    site = _site(tmp_path, {"cards": {"partner-missing": {"indicator": "info"}}})
    tuned = load_knowledge(CARDS, site)
    assert tuned.version != knowledge.version
    assert tuned.describe()["siteConfigDigest"] != "none"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"cards": {"no-such-card": {"enabled": False}}}, "unknown card"),
        ({"cards": {"partner-missing": {"indicator": "loud"}}}, "indicator"),
        ({"thresholds": {"no-such-rule": {"x": 1}}}, "unknown rule"),
        ({"thresholds": {"receptor-status": {"x": 1}}}, "no threshold"),
        ({"colour": "blue"}, "colour"),
    ],
    ids=["unknown-card", "bad-indicator", "unknown-rule", "unknown-threshold", "unknown-section"],
)
def test_bad_site_config_stops_start_up(tmp_path: Path, content: object, message: str) -> None:
    with pytest.raises(SiteConfigError, match=message):
        load_knowledge(CARDS, _site(tmp_path, content))


def test_missing_site_config_file_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(SiteConfigError, match="site configuration"):
        load_knowledge(CARDS, tmp_path / "absent.yaml")
