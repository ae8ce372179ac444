"""``python -m cds_service evaluate FILE``: run a CDS Hooks request, or a patient's record with a draft
palbociclib order, through the service's pipeline offline and print the cards."""

from __future__ import annotations

import argparse
import asyncio
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from cds_service.errors import CdsError
from cds_service.knowledge import Knowledge, load_knowledge
from cds_service.pipeline import Evaluation, evaluate
from cds_service.render import Renderer
from cds_service.scenarios import load_json, record_time, request_from_record
from cds_service.schemas.parse import parse_hook_request
from cds_service.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="CDS Hooks request JSON, or a FHIR Bundle of the patient's record")
    parser.add_argument("--json", action="store_true", help="print the CDS Hooks response as JSON")
    parser.add_argument("--service", default="palbociclib-order-sign", help="service id (default: %(default)s)")
    parser.add_argument("--now", help="evaluate as of this ISO time (default: the Bundle's timestamp, else now)")


async def run(knowledge: Knowledge, body: dict[str, Any], service_id: str, now: datetime) -> Evaluation:
    service = knowledge.registry.get(service_id)
    if service is None:
        raise CdsError(f"no service {service_id!r}; choose from {', '.join(knowledge.registry)}")
    if body.get("resourceType") == "Bundle":
        body = request_from_record(body, service)
    request, context = parse_hook_request(body, service.id, service.hook)
    return await evaluate(
        knowledge=knowledge,
        service=service,
        context=context,
        prefetch=request.prefetch,
        gateway=None,
        no_server_reason="offline evaluation reads only the file",
        renderer=Renderer(knowledge.catalogue, knowledge.site, knowledge.version, valuesets=knowledge.valuesets),
        now=now,
        budget_seconds=5.0,
    )


def readable(evaluation: Evaluation, knowledge: Knowledge, now: datetime) -> str:
    cards = evaluation.response.cards
    lines = [f"knowledge {knowledge.version} · as of {now.isoformat()} · {len(cards)} card(s)"]
    if not evaluation.orders:
        lines.append("No palbociclib order among the draft orders: no cards.")
    for card in cards:
        lines += ["", f"{card.indicator.upper():8} [{card.rule_id}] {card.summary}"]
        if card.detail:
            lines += [textwrap.indent(card.detail, "    ")]
        lines.append(f"    Source: {card.source.label}" + (f" <{card.source.url}>" if card.source.url else ""))
        for suggestion in card.suggestions or []:
            mark = " (recommended)" if suggestion.isRecommended else ""
            lines.append(f"    Suggestion: {suggestion.label}{mark}")
        if card.overrideReasons:
            lines.append("    Override reasons: " + "; ".join(r.display for r in card.overrideReasons))
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    settings = Settings()
    knowledge = load_knowledge(settings.cards_dir, settings.site_config)
    try:
        body = load_json(args.file)
    except (OSError, orjson.JSONDecodeError) as exc:
        print(f"cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    if not isinstance(body, dict):
        print(f"{args.file}: expected a JSON object", file=sys.stderr)
        return 2
    now = datetime.fromisoformat(args.now) if args.now else record_time(body) or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    try:
        evaluation = asyncio.run(run(knowledge, body, args.service, now))
    except CdsError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        for detail in exc.details:
            print(f"  - {detail}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(orjson.dumps(evaluation.response.wire(), option=orjson.OPT_INDENT_2).decode())
    else:
        print(readable(evaluation, knowledge, now))
    return 0
