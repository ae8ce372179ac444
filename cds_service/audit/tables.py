"""SQLAlchemy Core tables of the audit store (SQLite by default, PostgreSQL for several replicas).

``audit_record`` is the append-only, hash-chained log: every hook call, feedback item, auditor access and
purge is one record whose canonical JSON ``content`` is covered by ``content_digest`` and linked to the
previous record by ``chain_digest``. The ``*_index`` tables are lookups derived from the records, for
filters and joins; ``chain_head`` serialises appends; ``chain_anchor`` keeps the chain verifiable after a
retention purge. The schema is created and upgraded by the Alembic migrations in ``migrations/``.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

audit_record = Table(
    "audit_record",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("record_id", String(36), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("hook_instance", String(256)),
    Column("service_id", String(128)),
    Column("patient_id", String(256)),
    Column("user_id", String(256)),
    Column("http_status", Integer),
    Column("latency_ms", Float),
    Column("content", Text, nullable=False),
    Column("content_digest", String(64), nullable=False),
    Column("prev_digest", String(64), nullable=False),
    Column("chain_digest", String(64), nullable=False),
)
Index("ix_audit_record_recorded_at", audit_record.c.recorded_at)
Index("ix_audit_record_hook_instance", audit_record.c.hook_instance)
Index("ix_audit_record_patient", audit_record.c.patient_id)
Index("ix_audit_record_user", audit_record.c.user_id)
Index("ix_audit_record_kind", audit_record.c.kind)

chain_head = Table(
    "chain_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("chain_digest", String(64), nullable=False),
)

chain_anchor = Table(
    "chain_anchor",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("first_seq", BigInteger, nullable=False),
    Column("prev_digest", String(64), nullable=False),
)

card_index = Table(
    "card_index",
    metadata,
    Column("card_uuid", String(64), primary_key=True),
    Column("record_seq", BigInteger, ForeignKey("audit_record.seq", ondelete="CASCADE"), nullable=False),
    Column("hook_instance", String(256), nullable=False),
    Column("service_id", String(128), nullable=False),
    Column("rule_id", String(128), nullable=False),
    Column("indicator", String(16), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
)
Index("ix_card_index_rule", card_index.c.rule_id)
Index("ix_card_index_record", card_index.c.record_seq)

feedback_index = Table(
    "feedback_index",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("record_seq", BigInteger, ForeignKey("audit_record.seq", ondelete="CASCADE"), nullable=False),
    Column("service_id", String(128), nullable=False),
    Column("card_uuid", String(256), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("content_digest", String(64), nullable=False),
    # The same feedback sent twice is stored once; a changed outcome for the card is a new record (history).
    UniqueConstraint("service_id", "card_uuid", "content_digest", name="uq_feedback_content"),
)
Index("ix_feedback_index_card", feedback_index.c.card_uuid)

seen_jti = Table(
    "seen_jti",
    metadata,
    Column("iss", String(512), primary_key=True),
    Column("jti", String(256), primary_key=True),
    Column("expires_at", BigInteger, nullable=False),
)
Index("ix_seen_jti_expires", seen_jti.c.expires_at)
