"""``python -m cds_service send-hook``: an EHR simulator that calls a CDS service the way the CDS Hooks Sandbox
does.

1. Discovery: ``GET {service-base}/cds-services`` (with a JWT when a signing key is given) and the service
   for the hook (``--service`` picks one when several answer the same hook).
2. Prefetch: the service's templates filled from the context (``{{context.patientId}}``, ``userId``,
   ``encounterId`` and the user tokens) and run against the FHIR server with ``GET`` — or form-encoded
   ``POST {type}/_search`` with ``--post-search`` — as the Sandbox does. A template whose token has no value is
   not sent; a read that finds nothing (404) is sent as ``null``; a failed query is sent as the server's
   OperationOutcome, or left out when there is none. ``--no-prefetch`` sends no prefetch at all, so the service
   reads the FHIR server itself.
3. The hook call: ``draftOrders`` from ``--order`` (a MedicationRequest, or a Bundle) or from the scenario's
   draft MedicationRequests and the Medications they reference, as ``fixtures load`` put them on the FHIR server
   (so dates moved by ``--shift-to-today`` match the record); a fresh ``hookInstance``; ``fhirServer``, and
   ``fhirAuthorization`` (Bearer) when ``--token`` is given; an ES384 (or RS384) JWT with ``aud`` = the URL
   called.
4. The answer: cards printed readably (indicator, rule id = ``source.topic.code``, summary, suggestions), or
   the raw response with ``--json``. The exit status is 1 on a protocol error: a non-200 answer (its
   OperationOutcome is printed), a response that breaks the CDS Hooks 2.0 rules, a discovery without the
   service; 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import jwt
import orjson
import requests

from cds_service.cli.fixtures import FHIR_JSON, outcome_text, scenarios
from cds_service.prefetch.templates import render, token_values
from cds_service.scenarios import build_context, load_json, split_record
from cds_service.settings import Settings
from cds_service.snapshot.fhirjson import reference_id

INDICATORS = ("info", "warning", "critical")
SELECTION_BEHAVIORS = ("at-most-one", "any")
ACTION_TYPES = ("create", "update", "delete")
LINK_TYPES = ("absolute", "smart")
DEFAULT_USER = "Practitioner/cds-simulator"
TOKEN_LIFETIME = 300


class UsageError(Exception):
    """The command line or an input file is wrong (exit status 2)."""


class ProtocolError(Exception):
    """The service did not answer as CDS Hooks 2.0 says (exit status 1)."""


# -- signing ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    key: Any
    alg: str
    kid: str


def load_signing_key(path: Path, kid: str | None = None) -> SigningKey:
    """A private JWK (or a JWK Set holding one) for ES384 or RS384 signing."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the signing key {path}: {exc}") from exc
    candidates = document.get("keys") if isinstance(document, dict) and "keys" in document else [document]
    if not isinstance(candidates, list):
        raise UsageError(f"{path}: expected a JWK or a JWK Set")
    private = [k for k in candidates if isinstance(k, dict) and "d" in k and (kid is None or k.get("kid") == kid)]
    if not private:
        wanted = f" with kid {kid!r}" if kid else ""
        raise UsageError(f"{path}: no private key{wanted} (a private JWK has a 'd' member)")
    jwk = private[0]
    alg = str(jwk.get("alg") or {"EC": "ES384", "RSA": "RS384"}.get(str(jwk.get("kty")), ""))
    if alg not in ("ES384", "RS384"):
        raise UsageError(f"{path}: CDS Hooks clients sign with ES384 or RS384, not {alg or 'an unknown algorithm'}")
    key_id = kid or jwk.get("kid")
    if not key_id:
        raise UsageError(f"{path}: the key has no kid; give --kid")
    try:
        key = jwt.PyJWK({**jwk, "alg": alg}).key
    except jwt.PyJWTError as exc:
        raise UsageError(f"{path}: not a usable {alg} key ({exc})") from exc
    return SigningKey(key, alg, str(key_id))


def client_jwt(signing: SigningKey, iss: str, aud: str, *, jku: str | None = None, tenant: str | None = None) -> str:
    """A CDS Hooks 2.0 client JWT: iss, aud (the URL called), exp, iat, jti; header kid, typ JWT (jku)."""
    now = int(time.time())
    claims: dict[str, Any] = {"iss": iss, "aud": aud, "exp": now + TOKEN_LIFETIME, "iat": now, "jti": str(uuid.uuid4())}
    if tenant:
        claims["tenant"] = tenant
    header: dict[str, Any] = {"kid": signing.kid, "typ": "JWT"}
    if jku:
        header["jku"] = jku
    encoded: str = jwt.encode(claims, signing.key, algorithm=signing.alg, headers=header)
    return encoded


# -- draft orders ----------------------------------------------------------------------------------------


def drafts_from_document(document: Any, source: str) -> list[dict[str, Any]]:
    """The orders to send from a MedicationRequest or a Bundle: its draft MedicationRequests and the Medications
    they reference, or — with no draft in it — every MedicationRequest and Medication."""
    if not isinstance(document, dict):
        raise UsageError(f"{source}: expected a JSON object")
    kind = document.get("resourceType")
    if kind == "MedicationRequest":
        orders = [dict(document)]
    elif kind == "Bundle":
        _patient, drafts, record = split_record(document)
        orders = drafts or [r for r in record if r.get("resourceType") in ("MedicationRequest", "Medication")]
    else:
        raise UsageError(f"{source}: expected a MedicationRequest or a Bundle, not {kind!r}")
    if not any(o.get("resourceType") == "MedicationRequest" for o in orders):
        raise UsageError(f"{source}: holds no MedicationRequest to send")
    for order in orders:  # order-select names its selections by id
        order.setdefault("id", str(uuid.uuid4()))
    return orders


def scenario_record(fixtures_dir: Path, name: str) -> dict[str, Any]:
    _reference, found = scenarios(fixtures_dir)
    match = next((s for s in found if s.name == name), None)
    if match is None:
        raise UsageError(f"no scenario {name!r} in {fixtures_dir} (see `python -m cds_service fixtures list`)")
    record: dict[str, Any] = load_json(match.path)
    return record


def patient_of(orders: list[dict[str, Any]]) -> str | None:
    for order in orders:
        kind, rid = reference_id(order.get("subject"))
        if rid and kind in (None, "Patient"):
            return rid
    return None


# -- the exchange ----------------------------------------------------------------------------------------


@dataclass
class Exchange:
    """What one simulated hook call did: for the command's output and for tests."""

    service_id: str = ""
    request: dict[str, Any] = field(default_factory=dict)
    status: int | None = None
    body: Any = None
    knowledge_version: str | None = None
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _json(response: requests.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text


class Simulator:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.service_base = str(args.service_base).rstrip("/").removesuffix("/cds-services")  # base or discovery URL
        self.fhir_base = str(args.fhir_base).rstrip("/")
        self.signing = load_signing_key(args.sign_key, args.kid) if args.sign_key else None
        self.http = requests.Session()
        self.http.trust_env = False
        self.draft_notes: list[str] = []

    def _auth(self, url: str) -> dict[str, str]:
        if self.signing is None:
            return {}
        token = client_jwt(self.signing, self.args.iss, url, jku=self.args.jku, tenant=self.args.tenant)
        return {"Authorization": f"Bearer {token}"}

    def discover(self) -> dict[str, Any]:
        url = f"{self.service_base}/cds-services"
        # The hook call follows only after the prefetch queries, which can take as long as the service keeps an
        # idle connection (uvicorn: 5 s); a POST written as the service closes it would be lost, and is not
        # retried. So discovery has a connection of its own, closed after it, and the hook call opens another.
        headers = {"Accept": "application/json", "Connection": "close", **self._auth(url)}
        try:
            with requests.Session() as once:
                once.trust_env = False
                response = once.get(url, headers=headers, timeout=self.args.timeout)
        except requests.RequestException as exc:
            raise ProtocolError(f"discovery {url} failed: {type(exc).__name__}: {exc}") from exc
        body = _json(response)
        if response.status_code != 200:
            raise ProtocolError(f"discovery {url}: HTTP {response.status_code}: {outcome_text(body)}")
        services = body.get("services") if isinstance(body, dict) else None
        if not isinstance(services, list):
            raise ProtocolError(f"discovery {url}: the answer has no services array")
        wanted = [s for s in services if isinstance(s, dict) and s.get("hook") == self.args.hook]
        if self.args.service:
            wanted = [s for s in wanted if s.get("id") == self.args.service]
        if not wanted:
            listed = ", ".join(f"{s.get('id')} ({s.get('hook')})" for s in services if isinstance(s, dict)) or "none"
            named = f" with id {self.args.service!r}" if self.args.service else ""
            raise ProtocolError(f"discovery lists no {self.args.hook} service{named}; services: {listed}")
        if len(wanted) > 1:
            ids = ", ".join(str(s.get("id")) for s in wanted)
            raise UsageError(f"several services answer {self.args.hook} ({ids}): choose one with --service")
        service: dict[str, Any] = wanted[0]
        for name in ("id", "description"):
            if not isinstance(service.get(name), str) or not service[name]:
                raise ProtocolError(f"discovery: the {self.args.hook} service has no {name}")
        return service

    def _query(self, key: str, query: str) -> tuple[str, Any, str | None]:
        """One prefetch query: (key, value to send or ``...`` for "leave the key out", note)."""
        path, _, params = query.partition("?")
        auth = {"Authorization": f"Bearer {self.args.token}"} if self.args.token else {}
        head = {"Accept": FHIR_JSON, **auth}
        try:
            if params and self.args.post_search:
                response = self.http.post(
                    f"{self.fhir_base}/{path}/_search",
                    data=parse_qsl(params, keep_blank_values=True),
                    headers=head,
                    timeout=self.args.timeout,
                )
            else:
                response = self.http.get(f"{self.fhir_base}/{query}", headers=head, timeout=self.args.timeout)
        except requests.RequestException as exc:
            return key, ..., f"prefetch {key}: {type(exc).__name__}; left out"
        body = _json(response)
        if response.status_code == 200 and isinstance(body, dict):
            links = body.get("link") if body.get("resourceType") == "Bundle" else None
            if any(isinstance(x, dict) and x.get("relation") == "next" for x in links or []):
                return key, body, f"prefetch {key}: paged; only the first page is sent (as the Sandbox does)"
            return key, body, None
        if response.status_code in (404, 410) and not params:
            return key, None, None  # a read that finds nothing: "no data"
        if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
            return key, body, f"prefetch {key}: HTTP {response.status_code}, sent as OperationOutcome"
        return key, ..., f"prefetch {key}: HTTP {response.status_code}; left out"

    def prefetch(self, service: dict[str, Any], context: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        templates = service.get("prefetch") or {}
        if not isinstance(templates, dict):
            raise ProtocolError("discovery: prefetch is not an object")
        values = token_values(context)
        queries: list[tuple[str, str]] = []
        notes: list[str] = []
        for key, template in templates.items():
            query = render(str(template), values) if isinstance(template, str) else None
            if query is None:
                notes.append(f"prefetch {key}: a token has no value in this context; not sent")
            else:
                queries.append((key, query))
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(lambda kq: self._query(*kq), queries))
        prefetch: dict[str, Any] = {}
        for key, value, note in answers:
            if value is not ...:
                prefetch[key] = value
            if note:
                notes.append(note)
        return prefetch, notes

    def server_copies(self, orders: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
        """The scenario's draft orders as ``fixtures load`` put them on the FHIR server (dates moved by
        ``--shift-to-today`` included); the fixture's own copy, with a note, for one the server does not have."""
        auth = {"Authorization": f"Bearer {self.args.token}"} if self.args.token else {}
        found: list[dict[str, Any]] = []
        notes: list[str] = []
        for order in orders:
            kind, rid = order.get("resourceType"), order.get("id")
            try:
                response = self.http.get(
                    f"{self.fhir_base}/{kind}/{rid}", headers={"Accept": FHIR_JSON, **auth}, timeout=self.args.timeout
                )
                body = _json(response) if response.status_code == 200 else None
                problem = f"HTTP {response.status_code}"
            except requests.RequestException as exc:
                body, problem = None, type(exc).__name__
            if isinstance(body, dict) and body.get("resourceType") == kind and body.get("id") == rid:
                found.append(body)
            else:
                found.append(order)
                notes.append(f"draft {kind}/{rid}: {problem} from the FHIR server; sent as in the fixture")
        return found, notes

    def context(self) -> tuple[dict[str, Any], str]:
        args = self.args
        if args.scenario:
            record = scenario_record(args.fixtures_dir or Settings().fixtures_dir, args.scenario)
            patient, orders, _record = split_record(record)
            orders, self.draft_notes = self.server_copies(orders)
            scenario_patient = str(patient["id"]) if patient and patient.get("id") else None
        else:
            try:
                document = load_json(args.order)
            except (OSError, ValueError) as exc:
                raise UsageError(f"cannot read {args.order}: {exc}") from exc
            orders = drafts_from_document(document, str(args.order))
            scenario_patient = patient_of(orders)
        patient_id = args.patient or scenario_patient
        if not patient_id:
            raise UsageError("no patient: give --patient")
        context = build_context(patient_id, orders, args.hook, user_id=args.user)
        if args.encounter:
            context["encounterId"] = args.encounter
        return context, patient_id

    def request(
        self, service: dict[str, Any], context: dict[str, Any], patient_id: str
    ) -> tuple[dict[str, Any], list[str]]:
        request: dict[str, Any] = {
            "hook": self.args.hook,
            "hookInstance": str(uuid.uuid4()),
            "fhirServer": self.args.fhir_server or self.fhir_base,
            "context": context,
        }
        if self.args.token:
            request["fhirAuthorization"] = {
                "access_token": self.args.token,
                "token_type": "Bearer",
                "expires_in": TOKEN_LIFETIME,
                "scope": "patient/*.read",
                "subject": "cds-simulator",
                "patient": patient_id,
            }
        notes: list[str] = []
        if not self.args.no_prefetch:
            request["prefetch"], notes = self.prefetch(service, context)
        return request, notes

    def run(self) -> Exchange:
        exchange = Exchange()
        context, patient_id = self.context()
        service = self.discover()
        exchange.service_id = str(service["id"])
        exchange.request, notes = self.request(service, context, patient_id)
        exchange.notes = self.draft_notes + notes
        url = f"{self.service_base}/cds-services/{exchange.service_id}"
        try:
            response = self.http.post(
                url,
                data=orjson.dumps(exchange.request),
                headers={"Content-Type": "application/json", "Accept": "application/json", **self._auth(url)},
                timeout=self.args.timeout,
            )
        except requests.RequestException as exc:
            raise ProtocolError(f"POST {url} failed: {type(exc).__name__}: {exc}") from exc
        exchange.status = response.status_code
        exchange.body = _json(response)
        exchange.knowledge_version = response.headers.get("X-Knowledge-Version")
        if response.status_code != 200:
            exchange.problems.append(f"HTTP {response.status_code} from {url}: {outcome_text(exchange.body)}")
        else:
            exchange.problems.extend(validate_response(exchange.body))
        return exchange


# -- the response ----------------------------------------------------------------------------------------


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _validate_suggestions(where: str, card: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    suggestions = card["suggestions"]
    if not isinstance(suggestions, list):
        return [f"{where}: suggestions is not an array"]
    if card.get("selectionBehavior") not in SELECTION_BEHAVIORS:
        problems.append(f"{where}: suggestions need selectionBehavior {' or '.join(SELECTION_BEHAVIORS)}")
    for j, suggestion in enumerate(suggestions):
        at = f"{where}.suggestions[{j}]"
        if not isinstance(suggestion, dict) or not _text(suggestion.get("label")):
            problems.append(f"{at}: label is required")
            continue
        for k, action in enumerate(suggestion.get("actions") or []):
            if not isinstance(action, dict) or action.get("type") not in ACTION_TYPES:
                problems.append(f"{at}.actions[{k}]: type must be one of {', '.join(ACTION_TYPES)}")
                continue
            if not _text(action.get("description")):
                problems.append(f"{at}.actions[{k}]: description is required")
            if action["type"] in ("create", "update") and not isinstance(action.get("resource"), dict):
                problems.append(f"{at}.actions[{k}]: a {action['type']} action needs a resource")
    return problems


def _validate_links_and_reasons(where: str, card: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for j, reason in enumerate(card.get("overrideReasons") or []):
        if not isinstance(reason, dict) or not _text(reason.get("display")):
            problems.append(f"{where}.overrideReasons[{j}]: display is required")
    for j, link in enumerate(card.get("links") or []):
        if not isinstance(link, dict) or not (_text(link.get("label")) and _text(link.get("url"))):
            problems.append(f"{where}.links[{j}]: label and url are required")
        elif link.get("type") not in LINK_TYPES:
            problems.append(f"{where}.links[{j}]: type must be absolute or smart")
    return problems


def validate_card(where: str, card: Any) -> list[str]:
    if not isinstance(card, dict):
        return [f"{where}: not an object"]
    problems: list[str] = []
    summary = card.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        problems.append(f"{where}: summary is required")
    elif len(summary) >= 140:
        problems.append(f"{where}: summary has {len(summary)} characters (must be < 140)")
    if card.get("indicator") not in INDICATORS:
        problems.append(f"{where}: indicator {card.get('indicator')!r} is not one of {', '.join(INDICATORS)}")
    source = card.get("source")
    if not isinstance(source, dict) or not _text(source.get("label")):
        problems.append(f"{where}: source.label is required")
    if "detail" in card and not isinstance(card["detail"], str):
        problems.append(f"{where}: detail must be (Markdown) text")
    if "suggestions" in card:
        problems.extend(_validate_suggestions(where, card))
    return problems + _validate_links_and_reasons(where, card)


def validate_response(body: Any) -> list[str]:
    """What breaks the CDS Hooks 2.0 response rules (empty when the response is valid)."""
    if not isinstance(body, dict):
        return ["the response is not a JSON object"]
    cards = body.get("cards")
    if not isinstance(cards, list):
        return ["the response has no cards array"]
    problems: list[str] = []
    for i, card in enumerate(cards):
        problems.extend(validate_card(f"cards[{i}]", card))
    if "systemActions" in body and not isinstance(body["systemActions"], list):
        problems.append("systemActions is not an array")
    return problems


def rule_id(card: dict[str, Any]) -> str:
    topic = (card.get("source") or {}).get("topic") or {}
    return str(topic.get("code") or "-")


def readable(exchange: Exchange) -> str:
    cards = exchange.body.get("cards") if isinstance(exchange.body, dict) else None
    cards = cards if isinstance(cards, list) else []
    prefetched = exchange.request.get("prefetch")
    sent = f"{len(prefetched)} prefetch keys" if prefetched is not None else "no prefetch"
    version = f" · knowledge {exchange.knowledge_version}" if exchange.knowledge_version else ""
    outcome = f"{len(cards)} card(s)" if exchange.status == 200 else "no cards: the OperationOutcome is on stderr"
    lines = [f"{exchange.service_id} · HTTP {exchange.status} · {sent}{version} · {outcome}"]
    for card in cards:
        if not isinstance(card, dict):
            continue
        lines.append(f"{str(card.get('indicator', '?')).upper():8} [{rule_id(card)}] {card.get('summary', '')}")
        source = card.get("source") or {}
        if isinstance(source, dict) and source.get("label"):
            lines.append(f"         source: {source['label']}")
        for suggestion in card.get("suggestions") or []:
            if isinstance(suggestion, dict):
                mark = " (recommended)" if suggestion.get("isRecommended") else ""
                lines.append(f"         suggestion: {suggestion.get('label', '')}{mark}")
    if not cards and exchange.status == 200:
        lines.append("no cards")
    return "\n".join(lines)


# -- command line ----------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--service-base", required=True, help="service base (or discovery) URL, e.g. http://localhost:8080"
    )
    parser.add_argument("--fhir-base", required=True, help="FHIR server the simulator prefetches from")
    parser.add_argument(
        "--fhir-server",
        help="fhirServer to hand the service, when it reaches the FHIR server by another URL (default: --fhir-base)",
    )
    parser.add_argument("--patient", help="patient id (default: the scenario's or the order's patient)")
    orders = parser.add_mutually_exclusive_group(required=True)
    orders.add_argument("--order", type=Path, metavar="FILE", help="a MedicationRequest JSON, or a Bundle of orders")
    orders.add_argument(
        "--scenario",
        metavar="NAME",
        help="a scenario (see `fixtures list`): its patient and draft orders, as loaded on the FHIR server",
    )
    parser.add_argument("--hook", choices=("order-sign", "order-select"), default="order-sign")
    parser.add_argument("--service", help="service id, when several services answer the hook")
    parser.add_argument("--user", default=DEFAULT_USER, help="context.userId (default: %(default)s)")
    parser.add_argument("--encounter", help="context.encounterId")
    parser.add_argument("--no-prefetch", action="store_true", help="send no prefetch: the service reads FHIR itself")
    parser.add_argument("--post-search", action="store_true", help="prefetch with form-encoded POST {type}/_search")
    parser.add_argument("--token", help="FHIR access token: used for prefetch and sent as fhirAuthorization")
    parser.add_argument("--sign-key", type=Path, metavar="KEY.json", help="private JWK (ES384 or RS384) to sign with")
    parser.add_argument("--iss", help="JWT issuer (required with --sign-key)")
    parser.add_argument("--kid", help="JWT key id (default: the JWK's kid)")
    parser.add_argument("--jku", help="JWT jku header: URL of the client's JWK Set")
    parser.add_argument("--tenant", help="JWT tenant claim")
    parser.add_argument("--json", action="store_true", help="print the raw CDS Hooks response")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per HTTP request (default: %(default)s)")
    parser.add_argument("--fixtures-dir", type=Path, help="scenario folder (default: CDS_FIXTURES_DIR)")


def check_arguments(args: argparse.Namespace) -> None:
    if args.sign_key and not args.iss:
        raise UsageError("--sign-key needs --iss (the issuer the service trusts)")
    if not args.sign_key and (args.iss or args.kid or args.jku or args.tenant):
        raise UsageError("--iss, --kid, --jku and --tenant sign the JWT: give --sign-key too")
    if args.no_prefetch and args.post_search:
        raise UsageError("--post-search changes how prefetch is run: it cannot go with --no-prefetch")
    for name in ("service_base", "fhir_base", "fhir_server"):
        value = getattr(args, name)
        if value and not str(value).startswith(("http://", "https://")):
            raise UsageError(f"--{name.replace('_', '-')} must be an http(s) URL, not {value!r}")
    if args.timeout <= 0:
        raise UsageError("--timeout must be positive")


def simulate(args: argparse.Namespace) -> Exchange:
    """The whole exchange; raises ``UsageError`` or ``ProtocolError`` when it cannot be completed."""
    check_arguments(args)
    simulator = Simulator(args)
    try:
        return simulator.run()
    finally:
        simulator.http.close()


def main(args: argparse.Namespace) -> int:
    try:
        exchange = simulate(args)
    except UsageError as exc:
        print(f"send-hook: {exc}", file=sys.stderr)
        return 2
    except ProtocolError as exc:
        print(f"protocol error: {exc}", file=sys.stderr)
        return 1
    for note in exchange.notes:
        print(note, file=sys.stderr)
    if args.json:
        print(json.dumps(exchange.body, indent=2, ensure_ascii=False))
    else:
        print(readable(exchange))
    for problem in exchange.problems:
        print(f"protocol error: {problem}", file=sys.stderr)
    return 1 if exchange.problems else 0
