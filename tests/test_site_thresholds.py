"""Rule thresholds set by a site override the rule's defaults and are type-checked at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from cds_service.rules.base import Finding, Rule
from cds_service.site import SiteConfigError, load_site_config


def _rule() -> Rule:
    return Rule(
        name="cbc-recency",
        fires=("cbc-stale",),
        needs=frozenset({"cbc"}),
        evaluate=lambda snapshot, order, thresholds: [Finding("cbc-stale")],
        thresholds={"stale_after_days": 14, "ratio": 1.5},
    )


def test_thresholds_override_defaults(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text("thresholds:\n  cbc-recency: {stale_after_days: 21, ratio: 2}\n")
    site = load_site_config(path, [_rule()], ["cbc-stale"])
    assert dict(site.thresholds_for(_rule())) == {"stale_after_days": 21, "ratio": 2}


def test_threshold_of_the_wrong_type_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text("thresholds:\n  cbc-recency: {stale_after_days: 'three weeks'}\n")
    with pytest.raises(SiteConfigError, match="must be a int"):
        load_site_config(path, [_rule()], ["cbc-stale"])


def test_defaults_without_a_site_file() -> None:
    site = load_site_config(None, [_rule()], ["cbc-stale"])
    assert dict(site.thresholds_for(_rule())) == {"stale_after_days": 14, "ratio": 1.5}
    assert site.digest == "none"
