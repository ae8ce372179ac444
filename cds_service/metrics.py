"""Prometheus metrics of the service, and the small functions the rest of the code records them with.

Label values come only from fixed sets (service ids the registry knows, FHIR outcome classes, rule ids and
indicators of the service's own cards, HTTP status codes the service sends): never a URL, a patient or a
resource id, so a caller cannot grow the label space or read patient data from ``/metrics``.

With several uvicorn workers each process has its own metrics; when ``PROMETHEUS_MULTIPROC_DIR`` is set,
prometheus-client keeps them in files in that directory and ``render`` adds them up across the workers.
"""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, Final, Literal, get_args

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

log = logging.getLogger(__name__)

_MULTIPROC_DIR: Final = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
if _MULTIPROC_DIR:
    # prometheus-client writes a file per process there as soon as the metrics below are defined.
    os.makedirs(_MULTIPROC_DIR, exist_ok=True)

UNKNOWN_SERVICE: Final = "unknown"
# Hook calls take 2 ms (full prefetch) to 2 s (the call deadline with a slow FHIR server).
REQUEST_BUCKETS: Final = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
# An audit write is a local commit (SQLite WAL or PostgreSQL) or an fsynced spool append; the database's busy
# timeout is 5 s.
AUDIT_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

FhirOutcome = Literal["ok", "http_4xx", "http_5xx", "http_other", "timeout", "network_error", "malformed", "refused"]
FHIR_OUTCOMES: Final[tuple[FhirOutcome, ...]] = get_args(FhirOutcome)
_FHIR_KINDS: Final[dict[str, FhirOutcome]] = {
    "ok": "ok",
    "timeout": "timeout",
    "network-error": "network_error",
    "malformed": "malformed",
    "refused": "refused",
}
INDICATORS: Final = frozenset({"info", "warning", "critical"})

HOOK_SECONDS: Final = Histogram(
    "cds_hook_request_seconds",
    "Latency of CDS Hooks service calls (POST /cds-services/{id}) by service id and HTTP status; "
    'ids the service does not offer are counted as service="unknown".',
    ["service", "status"],
    buckets=REQUEST_BUCKETS,
)
FEEDBACK_SECONDS: Final = Histogram(
    "cds_feedback_request_seconds",
    "Latency of CDS Hooks feedback calls (POST /cds-services/{id}/feedback) by service id and HTTP status; "
    'ids the service does not offer are counted as service="unknown".',
    ["service", "status"],
    buckets=REQUEST_BUCKETS,
)
CARDS: Final = Counter(
    "cds_cards",
    "Cards returned to the EHR, by rule id (the card's source.topic.code) and indicator.",
    ["rule_id", "indicator"],
)
FHIR_QUERY_SECONDS: Final = Histogram(
    "cds_fhir_query_seconds",
    "Latency of the service's own requests to the EHR's FHIR server (prefetch fallback), one per page, by outcome: "
    "ok, http_4xx, http_5xx, http_other, timeout (request timeout or call deadline), network_error, "
    "malformed (not JSON or not the resource expected), refused (a next link not followed, off the server or "
    "past the page bound; observed as 0 s).",
    ["outcome"],
    buckets=REQUEST_BUCKETS,
)
RECONNECTS: Final = Counter(
    "cds_http_reconnects_total",
    "Outbound GETs (FHIR queries, JWK Set fetches) sent again on a new connection because the kept-alive one "
    "was closed or reset before any response: a server closing idle connections as they were reused. A FHIR "
    "query sent again is counted once in cds_fhir_query_seconds, by how it ended.",
)
AUDIT_WRITE_SECONDS: Final = Histogram(
    "cds_audit_write_seconds",
    "Time to make one audit record durable (database commit, or spool append when the database is down).",
    buckets=AUDIT_BUCKETS,
)
# The spool is one file per data directory, shared by the workers: every worker reads the same depth, and the
# worker answering the scrape reads it last, so its value is the one to show.
AUDIT_LATE: Final = Counter(
    "cds_audit_late_records_total",
    "Calls answered before their audit record was committed, because the store took longer than "
    "CDS_AUDIT_WAIT_SECONDS (the record stays queued and is committed when the store catches up).",
)
SPOOL_DEPTH: Final = Gauge(
    "cds_audit_spool_depth",
    "Audit records waiting in the local spool for the database, read when /metrics is scraped.",
    multiprocess_mode="livemostrecent",
)

for _outcome in FHIR_OUTCOMES:
    FHIR_QUERY_SECONDS.labels(outcome=_outcome)  # every outcome shows, at 0, before it first happens

_spool_depth: Callable[[], int] | None = None


def service_label(service_id: str, known: Collection[str]) -> str:
    return service_id if service_id in known else UNKNOWN_SERVICE


def observe_hook(service: str, status: int, seconds: float, known: Collection[str]) -> None:
    """One call of ``POST /cds-services/{service}``."""
    HOOK_SECONDS.labels(service=service_label(service, known), status=str(status)).observe(seconds)


def observe_feedback(service: str, status: int, seconds: float, known: Collection[str]) -> None:
    """One call of ``POST /cds-services/{service}/feedback``."""
    FEEDBACK_SECONDS.labels(service=service_label(service, known), status=str(status)).observe(seconds)


def count_cards(cards: Iterable[Mapping[str, Any]]) -> None:
    """The cards of one answer, as the audit record summarises them (``ruleId``, ``indicator``)."""
    for card in cards:
        rule_id, indicator = card.get("ruleId"), card.get("indicator")
        if isinstance(rule_id, str) and rule_id and indicator in INDICATORS:
            CARDS.labels(rule_id=rule_id, indicator=indicator).inc()


def fhir_outcome(kind: str, status: int | None) -> FhirOutcome:
    """The metric's outcome for a ``QueryOutcome.outcome`` of the FHIR client (and its HTTP status)."""
    if kind == "http-error":
        if status is not None and 400 <= status < 500:
            return "http_4xx"
        if status is not None and 500 <= status < 600:
            return "http_5xx"
        return "http_other"
    return _FHIR_KINDS.get(kind, "malformed")


def observe_fhir_query(outcome: FhirOutcome, seconds: float) -> None:
    FHIR_QUERY_SECONDS.labels(outcome=outcome if outcome in FHIR_OUTCOMES else "malformed").observe(seconds)


def count_reconnect() -> None:
    RECONNECTS.inc()


def observe_audit_write(seconds: float) -> None:
    """One audit record made durable (committed or spooled)."""
    AUDIT_WRITE_SECONDS.observe(seconds)


def count_late_audit_record() -> None:
    AUDIT_LATE.inc()


def track_spool(depth: Callable[[], int]) -> None:
    """The spool whose depth ``/metrics`` reports: the last one given (one audit store per process)."""
    global _spool_depth
    _spool_depth = depth


def refresh_spool_depth() -> None:
    if _spool_depth is None:
        return
    try:
        SPOOL_DEPTH.set(_spool_depth())
    except OSError as exc:  # an unreadable spool must not take /metrics down; the last value stays
        log.warning("cannot read the audit spool depth: %s", type(exc).__name__)


def render() -> tuple[bytes, str]:
    """The exposition text and its content type: this process's metrics, or every worker's in multiprocess mode."""
    refresh_spool_depth()
    if _MULTIPROC_DIR is None:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST


def _forget_live_gauges() -> None:
    # A worker that exits takes its "live" gauge values with it; its counters and histograms stay in the sums.
    if _MULTIPROC_DIR is not None:
        multiprocess.mark_process_dead(os.getpid(), _MULTIPROC_DIR)  # type: ignore[no-untyped-call]


atexit.register(_forget_live_gauges)
