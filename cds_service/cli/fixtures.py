"""``python -m cds_service fixtures load|list``: upload the clinical scenarios to a FHIR server, or list them.

``load`` sends each scenario of ``fhir_fixtures/`` as one FHIR transaction Bundle of ``PUT Type/id`` entries:
ids are the fixtures' own, so loading twice updates the same resources instead of adding copies. Everything in
a scenario's Bundle is uploaded, draft orders (MedicationRequests with status ``draft``) included: the EHR
simulator (``send-hook``) takes them from the scenario and sends them as ``draftOrders``; the service's
prefetch queries never ask for drafts. ``--shift-to-today`` moves every date by whole days so that the record
is as recent as it was at the manifests' reference time.
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import requests
import yaml

from cds_service.fhir.local import record_resources
from cds_service.scenarios import load_json, load_manifest
from cds_service.settings import Settings

FHIR_JSON = "application/fhir+json"

# FHIR date, dateTime and instant: YYYY, YYYY-MM, YYYY-MM-DD, then an optional time part kept verbatim.
_DATE_VALUE = re.compile(r"^(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})(?P<time>T.+)?)?)?$")
# Elements of a date type that do not end in Date, DateTime or Instant (Period.start/end, Timing.event,
# Meta.lastUpdated, NutritionOrder.dateTime, Annotation.time ...). A value is shifted only under one of
# these names and only if it looks like a date: a 4-digit code such as "7646" stays untouched.
_DATE_ELEMENTS = frozenset(
    {
        "authoredOn",
        "created",
        "date",
        "dateAsserted",
        "dateTime",
        "dateWritten",
        "end",
        "event",
        "issued",
        "lastOccurrence",
        "lastUpdated",
        "recorded",
        "start",
        "time",
        "timestamp",
        "whenHandedOver",
        "whenPrepared",
    }
)
_DATE_SUFFIXES = ("Date", "DateTime", "Instant")


def is_date_element(name: str) -> bool:
    return name in _DATE_ELEMENTS or name.endswith(_DATE_SUFFIXES)


def shift_date_value(value: str, days: int) -> str:
    """``value`` moved by ``days`` at its own precision: the calendar date moves, a time of day and its
    offset stay as written. Partial dates (``2025``, ``2025-10``) move their first day. Anything that is
    not a FHIR date is returned unchanged."""
    match = _DATE_VALUE.match(value)
    if match is None or days == 0:
        return value
    year, month, day = int(match["year"]), int(match["month"] or 1), int(match["day"] or 1)
    try:
        moved = date(year, month, day) + timedelta(days=days)
    except (ValueError, OverflowError):
        return value
    if match["month"] is None:
        return f"{moved.year:04d}"
    if match["day"] is None:
        return f"{moved.year:04d}-{moved.month:02d}"
    return f"{moved.isoformat()}{match['time'] or ''}"


def shift_dates(node: Any, days: int, name: str = "") -> Any:
    """A copy of a FHIR JSON value with every date, dateTime, instant and Period start/end moved by ``days``
    (contained resources included)."""
    if isinstance(node, dict):
        return {key: shift_dates(value, days, key) for key, value in node.items()}
    if isinstance(node, list):
        return [shift_dates(item, days, name) for item in node]
    if isinstance(node, str) and is_date_element(name):
        return shift_date_value(node, days)
    return node


def days_to_today(reference: datetime, today: date | None = None) -> int:
    """Whole days from the manifests' reference date to today (UTC)."""
    today = today or datetime.now(UTC).date()
    return (today - reference.astimezone(UTC).date()).days


def transaction(resources: list[dict[str, Any]], fhir_base: str) -> dict[str, Any]:
    """A transaction Bundle that PUTs each resource at its own id (idempotent)."""
    base = fhir_base.rstrip("/")
    entries = []
    for resource in resources:
        kind, rid = resource.get("resourceType"), resource.get("id")
        if not isinstance(kind, str) or not isinstance(rid, str) or not rid:
            raise ValueError(f"a {kind or 'resource'} without an id cannot be loaded idempotently")
        entries.append(
            {
                "fullUrl": f"{base}/{kind}/{rid}",
                "resource": resource,
                "request": {"method": "PUT", "url": f"{kind}/{rid}"},
            }
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    meaning: str
    expected_cards: tuple[tuple[str, str], ...]
    path: Path


def scenarios(fixtures_dir: Path) -> tuple[datetime, list[Scenario]]:
    """The manifests' reference time and scenarios, in manifest order (parsed once per version of the files)."""
    stamp = tuple((p.name, p.stat().st_mtime_ns) for p in sorted(fixtures_dir.glob("scenarios*.yaml")))
    reference, found = _scenarios(fixtures_dir.resolve(), stamp)
    return reference, list(found)


@lru_cache(maxsize=8)
def _scenarios(fixtures_dir: Path, _stamp: tuple[tuple[str, int], ...]) -> tuple[datetime, tuple[Scenario, ...]]:
    manifest = load_manifest(fixtures_dir)
    reference = datetime.fromisoformat(str(manifest["reference_time"]).replace("Z", "+00:00"))
    found = tuple(
        Scenario(
            name=str(s["name"]),
            title=str(s.get("title") or ""),
            meaning=" ".join(str(s.get("meaning") or "").split()),
            expected_cards=tuple((str(c["rule_id"]), str(c["indicator"])) for c in s.get("expected_cards") or []),
            path=fixtures_dir / str(s.get("file") or f"{s['name']}.json"),
        )
        for s in manifest["scenarios"]
    )
    return reference, found


@dataclass
class LoadResult:
    scenario: str
    resources: Counter[str] = field(default_factory=Counter)
    http_status: int | None = None
    entry_statuses: Counter[str] = field(default_factory=Counter)
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def line(self) -> str:
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(self.resources.items()))
        total = sum(self.resources.values())
        head = f"{self.scenario}: {total} resources ({kinds})"
        if self.http_status is None:
            return f"{head} -> not sent: {self.problem}"
        entries = ", ".join(f"{count} x {status}" for status, count in sorted(self.entry_statuses.items()))
        tail = f" [{entries}]" if entries else ""
        if self.problem:
            return f"{head} -> HTTP {self.http_status} FAILED: {self.problem}"
        return f"{head} -> HTTP {self.http_status}{tail}"


def outcome_text(body: Any) -> str:
    """The issues of an OperationOutcome, one line; otherwise the start of the body."""
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        issues = [
            "{}/{}: {}".format(
                i.get("severity", "?"),
                i.get("code", "?"),
                i.get("diagnostics") or (i.get("details") or {}).get("text") or "",
            )
            + (f" at {', '.join(i['expression'])}" if i.get("expression") else "")
            for i in body.get("issue") or []
            if isinstance(i, dict)
        ]
        return "; ".join(issues) or "OperationOutcome without issues"
    return str(body)[:500]


def headers(token: str | None, content_type: str | None = None) -> dict[str, str]:
    found = {"Accept": FHIR_JSON}
    if content_type:
        found["Content-Type"] = content_type
    if token:
        found["Authorization"] = f"Bearer {token}"
    return found


def load_one(scenario: Scenario, fhir_base: str, token: str | None, shift_days: int, timeout: float) -> LoadResult:
    result = LoadResult(scenario.name)
    try:
        resources = [shift_dates(r, shift_days) for r in record_resources(load_json(scenario.path))]
        result.resources.update(str(r.get("resourceType")) for r in resources)
        bundle = transaction(resources, fhir_base)
    except (OSError, ValueError) as exc:
        result.problem = f"cannot read {scenario.path.name}: {exc}"
        return result
    try:
        response = requests.post(fhir_base.rstrip("/"), json=bundle, headers=headers(token, FHIR_JSON), timeout=timeout)
    except requests.RequestException as exc:
        result.problem = f"{type(exc).__name__}: {exc}"
        return result
    result.http_status = response.status_code
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    if response.status_code != 200:
        result.problem = outcome_text(body)
        return result
    for entry in (body.get("entry") if isinstance(body, dict) else None) or []:
        status = str((entry.get("response") or {}).get("status") or "?")
        result.entry_statuses[status.split()[0]] += 1
    if sum(result.entry_statuses.values()) != sum(result.resources.values()):
        result.problem = "the transaction response does not account for every entry"
    return result


def wait_for_server(fhir_base: str, token: str | None, seconds: float) -> str | None:
    """Poll ``GET [base]/metadata`` until it answers 200; the last problem if it never does."""
    deadline = time.monotonic() + seconds
    problem = "not tried"
    while True:
        try:
            response = requests.get(f"{fhir_base.rstrip('/')}/metadata", headers=headers(token), timeout=10)
            if response.status_code == 200:
                return None
            problem = f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            problem = type(exc).__name__
        if time.monotonic() >= deadline:
            return problem
        time.sleep(2)


def _load(args: argparse.Namespace, reference: datetime, found: list[Scenario]) -> int:
    if args.scenario:
        unknown = sorted(set(args.scenario) - {s.name for s in found})
        if unknown:
            print(f"unknown scenario(s): {', '.join(unknown)} (see `fixtures list`)", file=sys.stderr)
            return 2
        found = [s for s in found if s.name in set(args.scenario)]
    if args.wait:
        problem = wait_for_server(args.fhir_base, args.token, args.wait)
        if problem:
            print(f"{args.fhir_base} did not answer GET /metadata within {args.wait:g} s ({problem})", file=sys.stderr)
            return 1
    shift = days_to_today(reference) if args.shift_to_today else 0
    if args.shift_to_today:
        print(f"dates moved by {shift:+d} days (reference {reference.date().isoformat()} -> today)")
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(lambda s: load_one(s, args.fhir_base, args.token, shift, args.timeout), found))
    for result in results:
        print(result.line())
    failed = [r for r in results if not r.ok]
    total = sum(sum(r.resources.values()) for r in results if r.ok)
    print(f"loaded {len(results) - len(failed)} of {len(results)} scenarios ({total} resources) into {args.fhir_base}")
    if failed:
        print(f"{len(failed)} failed: {', '.join(r.scenario for r in failed)}", file=sys.stderr)
        return 1
    return 0


def _list(fixtures_dir: Path, reference: datetime, found: list[Scenario]) -> int:
    print(f"{len(found)} scenarios in {fixtures_dir} (reference time {reference.isoformat()})")
    for scenario in found:
        expected = ", ".join(f"{rule} ({indicator})" for rule, indicator in scenario.expected_cards)
        print(f"\n{scenario.name}: {scenario.title}")
        print(f"    expects: {expected or 'no warning or critical card'}")
        print(textwrap.fill(scenario.meaning, width=110, initial_indent="    ", subsequent_indent="    "))
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fixtures-dir", type=Path, help="scenario folder (default: CDS_FIXTURES_DIR)")
    actions = parser.add_subparsers(dest="action", required=True)
    load = actions.add_parser(
        "load", help="upload every scenario to a FHIR server as a transaction Bundle (PUT Type/id: idempotent)"
    )
    load.add_argument("--fhir-base", required=True, help="FHIR R4 base URL, e.g. http://localhost:8081/fhir")
    load.add_argument("--token", help="Bearer access token for the FHIR server")
    load.add_argument(
        "--shift-to-today",
        action="store_true",
        help="move every date by (today - the manifests' reference date) in whole days, so recency rules "
        "behave as in the tests (default: dates as written)",
    )
    load.add_argument(
        "--scenario", action="append", metavar="NAME", help="load only this scenario (repeatable; default: all)"
    )
    load.add_argument("--jobs", type=int, default=4, help="transactions sent at once (default: %(default)s)")
    load.add_argument("--timeout", type=float, default=60.0, help="seconds per transaction (default: %(default)s)")
    load.add_argument(
        "--wait", type=float, default=0.0, metavar="SECONDS", help="first wait this long for GET [base]/metadata"
    )
    actions.add_parser("list", help="show the scenarios with their clinical meaning and expected cards")


def main(args: argparse.Namespace) -> int:
    fixtures_dir: Path = args.fixtures_dir or Settings().fixtures_dir
    try:
        reference, found = scenarios(fixtures_dir)
    except (OSError, ValueError, KeyError, yaml.YAMLError) as exc:
        print(f"cannot read the scenarios in {fixtures_dir}: {exc}", file=sys.stderr)
        return 2
    if args.action == "list":
        return _list(fixtures_dir, reference, found)
    return _load(args, reference, found)
