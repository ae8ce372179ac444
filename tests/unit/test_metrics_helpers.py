"""The recording functions of cds_service.metrics, through what /metrics renders: cards by rule and indicator,
audit write latency, the spool depth, the FHIR outcome classes and the service label.

The metrics are process-global: every check compares values before and after."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cds_service import metrics

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _rendered() -> tuple[str, Samples]:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    text = body.decode()
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return text, samples


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_cards_are_counted_by_rule_and_indicator() -> None:
    _, before = _rendered()
    metrics.count_cards(
        [
            {"uuid": "a", "ruleId": "partner-missing", "indicator": "warning", "summary": "No endocrine partner"},
            {"uuid": "b", "ruleId": "partner-missing", "indicator": "warning"},
            {"uuid": "c", "ruleId": "cbc-stale", "indicator": "info"},
        ]
    )
    metrics.count_cards([])
    _, after = _rendered()

    def delta(rule_id: str, indicator: str) -> float:
        labels = {"rule_id": rule_id, "indicator": indicator}
        return _value(after, "cds_cards_total", **labels) - _value(before, "cds_cards_total", **labels)

    assert delta("partner-missing", "warning") == 2
    assert delta("cbc-stale", "info") == 1
    assert delta("partner-missing", "critical") == 0


def test_card_summaries_without_a_rule_or_a_known_indicator_are_not_counted() -> None:
    _, before = _rendered()
    metrics.count_cards(
        [
            {"uuid": "a", "indicator": "warning"},
            {"uuid": "b", "ruleId": "", "indicator": "warning"},
            {"uuid": "c", "ruleId": "odd-indicator-rule", "indicator": "hard-stop"},
            {"uuid": "d", "ruleId": "no-indicator-rule"},
        ]
    )
    text, after = _rendered()
    totals = [sum(v for (name, _), v in s.items() if name == "cds_cards_total") for s in (before, after)]
    assert totals[0] == totals[1]
    assert "odd-indicator-rule" not in text
    assert "no-indicator-rule" not in text


def test_audit_writes_fill_the_latency_histogram() -> None:
    _, before = _rendered()
    metrics.observe_audit_write(0.004)
    metrics.observe_audit_write(0.3)
    _, after = _rendered()

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert delta("cds_audit_write_seconds_count") == 2
    assert delta("cds_audit_write_seconds_sum") == pytest.approx(0.304)
    assert delta("cds_audit_write_seconds_bucket", le="0.005") == 1
    assert delta("cds_audit_write_seconds_bucket", le="0.25") == 1
    assert delta("cds_audit_write_seconds_bucket", le="0.5") == 2


def test_spool_depth_is_read_from_the_tracked_spool_at_each_scrape(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_spool_depth", None)
    depth = [7]
    metrics.track_spool(lambda: depth[0])
    assert _value(_rendered()[1], "cds_audit_spool_depth") == 7
    depth[0] = 0
    assert _value(_rendered()[1], "cds_audit_spool_depth") == 0

    def unreadable() -> int:
        raise PermissionError("spool")

    depth[0] = 3
    _rendered()
    metrics.track_spool(unreadable)
    assert _value(_rendered()[1], "cds_audit_spool_depth") == 3  # the last value read stays


def test_the_last_spool_tracked_is_the_one_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_spool_depth", None)
    metrics.track_spool(lambda: 11)
    metrics.track_spool(lambda: 2)
    assert _value(_rendered()[1], "cds_audit_spool_depth") == 2


@pytest.mark.parametrize(
    ("kind", "status", "expected"),
    [
        ("ok", 200, "ok"),
        ("http-error", 401, "http_4xx"),
        ("http-error", 404, "http_4xx"),
        ("http-error", 503, "http_5xx"),
        ("http-error", 302, "http_other"),
        ("http-error", None, "http_other"),
        ("timeout", None, "timeout"),
        ("network-error", None, "network_error"),
        ("malformed", 200, "malformed"),
        ("refused", None, "refused"),
        ("something-new", None, "malformed"),
    ],
)
def test_fhir_client_outcomes_map_to_a_fixed_set(kind: str, status: int | None, expected: str) -> None:
    assert metrics.fhir_outcome(kind, status) == expected
    assert expected in metrics.FHIR_OUTCOMES


def test_every_fhir_outcome_is_exposed_before_it_happens() -> None:
    _, samples = _rendered()
    exposed = {dict(labels)["outcome"] for name, labels in samples if name == "cds_fhir_query_seconds_count"}
    assert exposed == set(metrics.FHIR_OUTCOMES)


def test_only_known_service_ids_become_label_values() -> None:
    known = frozenset({"palbociclib-order-sign", "palbociclib-order-select"})
    assert metrics.service_label("palbociclib-order-sign", known) == "palbociclib-order-sign"
    assert metrics.service_label("palbociclib-order-sign-x", known) == "unknown"
    assert metrics.service_label("", known) == "unknown"
    assert metrics.service_label("palbociclib-order-sign", ()) == "unknown"


def test_serve_empties_the_multiprocess_directory_of_an_earlier_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cds_service.__main__ import _clear_metrics_dir

    stale = tmp_path / "counter_1234.db"
    stale.write_bytes(b"old counts")
    keep = tmp_path / "README"
    keep.write_text("not a metrics file")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    _clear_metrics_dir()
    assert not stale.exists()
    assert keep.exists()
