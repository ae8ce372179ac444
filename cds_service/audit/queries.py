"""What auditors ask of the log: filtered, paginated invocations; one invocation in full with the
feedback on each card; counts per rule."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from sqlalchemy import Engine, Select, and_, exists, func, select

from cds_service.audit import tables

Outcome = Literal["accepted", "overridden", "none"]
record = tables.audit_record.c
card = tables.card_index.c
feedback = tables.feedback_index.c


@dataclass(frozen=True)
class InvocationFilter:
    start: datetime | None = None
    end: datetime | None = None
    patient: str | None = None
    user: str | None = None
    service: str | None = None
    rule: str | None = None
    indicator: str | None = None
    outcome: Outcome | None = None
    page: int = 1
    page_size: int = 50


def _filtered(f: InvocationFilter) -> Select[Any]:
    query = select(tables.audit_record).where(record.kind == "invocation")
    for column, value in ((record.patient_id, f.patient), (record.user_id, f.user), (record.service_id, f.service)):
        if value:
            query = query.where(column == value)
    if f.start:
        query = query.where(record.recorded_at >= f.start)
    if f.end:
        query = query.where(record.recorded_at < f.end)
    card_conditions = [card.record_seq == record.seq]
    if f.rule:
        card_conditions.append(card.rule_id == f.rule)
    if f.indicator:
        card_conditions.append(card.indicator == f.indicator)
    if f.outcome in ("accepted", "overridden"):
        card_conditions.append(
            exists().where(and_(feedback.card_uuid == card.card_uuid, feedback.outcome == f.outcome))
        )
    elif f.outcome == "none":
        card_conditions.append(~exists().where(feedback.card_uuid == card.card_uuid))
    if len(card_conditions) > 1:
        query = query.where(exists().where(and_(*card_conditions)))
    return query


def _cards_of(engine: Engine, seqs: list[int]) -> dict[int, list[dict[str, Any]]]:
    if not seqs:
        return {}
    cards: dict[int, list[dict[str, Any]]] = defaultdict(list)
    outcomes = _latest_outcomes(engine, seqs)
    with engine.connect() as connection:
        for row in connection.execute(select(tables.card_index).where(card.record_seq.in_(seqs))):
            cards[row.record_seq].append(
                {
                    "uuid": row.card_uuid,
                    "ruleId": row.rule_id,
                    "indicator": row.indicator,
                    "outcome": outcomes.get(row.card_uuid),
                }
            )
    return cards


def _latest_outcomes(engine: Engine, seqs: list[int] | None = None) -> dict[str, str]:
    """The latest feedback outcome of each card (feedback history is kept; the last word counts)."""
    query = select(feedback.card_uuid, feedback.outcome).order_by(feedback.record_seq)
    if seqs is not None:
        query = query.join(tables.card_index, card.card_uuid == feedback.card_uuid).where(card.record_seq.in_(seqs))
    with engine.connect() as connection:
        return {row.card_uuid: row.outcome for row in connection.execute(query)}


def _utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time in the log is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def list_invocations(engine: Engine, f: InvocationFilter) -> dict[str, Any]:
    query = _filtered(f)
    with engine.connect() as connection:
        total = connection.execute(select(func.count()).select_from(query.subquery())).scalar_one()
        rows = list(
            connection.execute(query.order_by(record.seq.desc()).limit(f.page_size).offset((f.page - 1) * f.page_size))
        )
    cards = _cards_of(engine, [r.seq for r in rows])
    items = [
        {
            "recordId": r.record_id,
            "seq": r.seq,
            "recordedAt": r.recorded_at.isoformat(),
            "hookInstance": r.hook_instance,
            "serviceId": r.service_id,
            "patientId": r.patient_id,
            "userId": r.user_id,
            "httpStatus": r.http_status,
            "latencyMs": r.latency_ms,
            "cards": cards.get(r.seq, []),
        }
        for r in rows
    ]
    return {"items": items, "page": f.page, "pageSize": f.page_size, "total": total}


def invocation(engine: Engine, record_id: str) -> dict[str, Any] | None:
    with engine.connect() as connection:
        row = connection.execute(
            select(tables.audit_record).where(record.record_id == record_id, record.kind == "invocation")
        ).first()
        if row is None:
            return None
        content: dict[str, Any] = orjson.loads(row.content)
        uuids = [c["uuid"] for c in content.get("cards", []) if c.get("uuid")]
        history: dict[str, list[dict[str, Any]]] = defaultdict(list)
        query = (
            select(feedback.card_uuid, record.content)
            .join(tables.audit_record, record.seq == feedback.record_seq)
            .where(feedback.card_uuid.in_(uuids))
            .order_by(record.seq)
        )
        for item in connection.execute(query):
            history[item.card_uuid].append(orjson.loads(item.content))
    for entry in content.get("cards", []):
        entry["feedback"] = history.get(entry.get("uuid", ""), [])
    return {"seq": row.seq, "recordId": row.record_id, "chainDigest": row.chain_digest, "record": content}


def rule_summary(engine: Engine, start: datetime | None = None, end: datetime | None = None) -> list[dict[str, Any]]:
    """Per rule: cards fired, accepted, overridden (with reasons), and with no response."""
    query = select(card.card_uuid, card.rule_id, card.indicator)
    if start:
        query = query.where(card.issued_at >= start)
    if end:
        query = query.where(card.issued_at < end)
    reasons: dict[str, str] = {}
    latest: dict[str, str] = {}
    with engine.connect() as connection:
        cards = list(connection.execute(query))
        feedback_rows = connection.execute(
            select(feedback.card_uuid, feedback.outcome, record.content)
            .join(tables.audit_record, record.seq == feedback.record_seq)
            .order_by(record.seq)
        )
        for row in feedback_rows:
            latest[row.card_uuid] = row.outcome
            if row.outcome == "overridden":
                override = orjson.loads(row.content)["feedback"].get("overrideReason") or {}
                reason = override.get("reason") or {}
                reasons[row.card_uuid] = reason.get("display") or reason.get("code") or "no reason given"
    summary: dict[str, dict[str, Any]] = {}
    for row in cards:
        entry = summary.setdefault(
            row.rule_id,
            {
                "ruleId": row.rule_id,
                "fired": 0,
                "accepted": 0,
                "overridden": 0,
                "noResponse": 0,
                "overrideReasons": Counter(),
            },
        )
        entry["fired"] += 1
        outcome = latest.get(row.card_uuid)
        if outcome == "accepted":
            entry["accepted"] += 1
        elif outcome == "overridden":
            entry["overridden"] += 1
            entry["overrideReasons"][reasons.get(row.card_uuid, "no reason given")] += 1
        else:
            entry["noResponse"] += 1
    return [{**entry, "overrideReasons": dict(entry["overrideReasons"])} for _, entry in sorted(summary.items())]
