"""Append-only audit store on SQLAlchemy Core.

Records the cards each call returned (so feedback can be joined to its card) and the feedback itself.
Writes are idempotent: a feedback item sent again with the same content is not stored twice, while a new
outcome for a card is kept as history.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from sqlalchemy import Engine, create_engine, event, insert, select
from sqlalchemy.exc import IntegrityError

from cds_service.audit import tables
from cds_service.schemas.cards import Card
from cds_service.schemas.feedback import FeedbackItem


@dataclass(frozen=True, slots=True)
class FeedbackResult:
    stored: int
    duplicates: int
    unknown_cards: list[str]


class AuditStore(Protocol):
    def record_cards(
        self, *, hook_instance: str, service_id: str, cards: Sequence[Card], knowledge_version: str
    ) -> None: ...

    def record_feedback(self, service_id: str, items: Sequence[FeedbackItem]) -> FeedbackResult: ...

    def feedback_for(self, card_uuid: str) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


def _digest(item: FeedbackItem) -> str:
    content = item.model_dump(mode="json", exclude_none=True)
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


class SqlAuditStore:
    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(url, future=True, pool_pre_ping=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        tables.metadata.create_all(self.engine)

    def record_cards(
        self, *, hook_instance: str, service_id: str, cards: Sequence[Card], knowledge_version: str
    ) -> None:
        if not cards:
            return
        now = datetime.now(UTC)
        rows = [
            {
                "uuid": card.uuid,
                "hook_instance": hook_instance,
                "service_id": service_id,
                "rule_id": card.rule_id,
                "indicator": card.indicator,
                "suggestion_uuids": [s.uuid for s in card.suggestions or [] if s.uuid],
                "knowledge_version": knowledge_version,
                "issued_at": now,
            }
            for card in cards
        ]
        with self.engine.begin() as connection:
            connection.execute(insert(tables.card), rows)

    def record_feedback(self, service_id: str, items: Sequence[FeedbackItem]) -> FeedbackResult:
        stored = duplicates = 0
        unknown: list[str] = []
        now = datetime.now(UTC)
        for item in items:
            reason = item.overrideReason.reason if item.overrideReason else None
            row = {
                "service_id": service_id,
                "card_uuid": item.card,
                "outcome": item.outcome,
                "accepted_suggestions": [s.id for s in item.acceptedSuggestions or []],
                "override_reason_code": reason.code if reason else None,
                "override_reason_system": reason.system if reason else None,
                "override_comment": item.overrideReason.userComment if item.overrideReason else None,
                "outcome_timestamp": item.outcomeTimestamp.astimezone(UTC),
                "received_at": now,
                "content_digest": _digest(item),
            }
            try:
                with self.engine.begin() as connection:
                    known = connection.execute(
                        select(tables.card.c.uuid).where(tables.card.c.uuid == item.card)
                    ).first()
                    connection.execute(insert(tables.feedback), [row])
            except IntegrityError:
                duplicates += 1
                continue
            stored += 1
            if known is None:
                unknown.append(item.card)
        return FeedbackResult(stored, duplicates, unknown)

    def feedback_for(self, card_uuid: str) -> list[dict[str, Any]]:
        query = select(tables.feedback).where(tables.feedback.c.card_uuid == card_uuid).order_by(tables.feedback.c.id)
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def close(self) -> None:
        self.engine.dispose()
