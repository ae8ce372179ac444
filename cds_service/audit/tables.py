"""SQLAlchemy Core tables of the audit store (SQLite by default, PostgreSQL for several replicas)."""

from __future__ import annotations

from sqlalchemy import JSON, Column, DateTime, Index, Integer, MetaData, String, Table, Text, UniqueConstraint

metadata = MetaData()

card = Table(
    "card",
    metadata,
    Column("uuid", String(64), primary_key=True),
    Column("hook_instance", String(256), nullable=False),
    Column("service_id", String(128), nullable=False),
    Column("rule_id", String(128), nullable=False),
    Column("indicator", String(16), nullable=False),
    Column("suggestion_uuids", JSON, nullable=False),
    Column("knowledge_version", String(64), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
)
Index("ix_card_hook_instance", card.c.hook_instance)

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("service_id", String(128), nullable=False),
    Column("card_uuid", String(256), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("accepted_suggestions", JSON, nullable=False),
    Column("override_reason_code", String(256)),
    Column("override_reason_system", String(1024)),
    Column("override_comment", Text),
    Column("outcome_timestamp", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("content_digest", String(64), nullable=False),
    # The same feedback sent twice is stored once; a changed outcome for the card is a new row (history).
    UniqueConstraint("service_id", "card_uuid", "content_digest", name="uq_feedback_content"),
)
Index("ix_feedback_card", feedback.c.card_uuid)
