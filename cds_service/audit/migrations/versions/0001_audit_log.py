"""Hash-chained audit log with card and feedback indexes.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    big = sa.BigInteger().with_variant(sa.Integer, "sqlite")
    op.create_table(
        "audit_record",
        sa.Column("seq", big, primary_key=True, autoincrement=False),
        sa.Column("record_id", sa.String(36), nullable=False, unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hook_instance", sa.String(256)),
        sa.Column("service_id", sa.String(128)),
        sa.Column("patient_id", sa.String(256)),
        sa.Column("user_id", sa.String(256)),
        sa.Column("http_status", sa.Integer),
        sa.Column("latency_ms", sa.Float),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("content_digest", sa.String(64), nullable=False),
        sa.Column("prev_digest", sa.String(64), nullable=False),
        sa.Column("chain_digest", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_record_recorded_at", "audit_record", ["recorded_at"])
    op.create_index("ix_audit_record_hook_instance", "audit_record", ["hook_instance"])
    op.create_index("ix_audit_record_patient", "audit_record", ["patient_id"])
    op.create_index("ix_audit_record_user", "audit_record", ["user_id"])
    op.create_index("ix_audit_record_kind", "audit_record", ["kind"])
    op.create_table(
        "chain_head",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("chain_digest", sa.String(64), nullable=False),
    )
    op.create_table(
        "chain_anchor",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("first_seq", sa.BigInteger, nullable=False),
        sa.Column("prev_digest", sa.String(64), nullable=False),
    )
    op.create_table(
        "card_index",
        sa.Column("card_uuid", sa.String(64), primary_key=True),
        sa.Column("record_seq", big, sa.ForeignKey("audit_record.seq", ondelete="CASCADE"), nullable=False),
        sa.Column("hook_instance", sa.String(256), nullable=False),
        sa.Column("service_id", sa.String(128), nullable=False),
        sa.Column("rule_id", sa.String(128), nullable=False),
        sa.Column("indicator", sa.String(16), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_card_index_rule", "card_index", ["rule_id"])
    op.create_index("ix_card_index_record", "card_index", ["record_seq"])
    op.create_table(
        "feedback_index",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("record_seq", big, sa.ForeignKey("audit_record.seq", ondelete="CASCADE"), nullable=False),
        sa.Column("service_id", sa.String(128), nullable=False),
        sa.Column("card_uuid", sa.String(256), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("content_digest", sa.String(64), nullable=False),
        sa.UniqueConstraint("service_id", "card_uuid", "content_digest", name="uq_feedback_content"),
    )
    op.create_index("ix_feedback_index_card", "feedback_index", ["card_uuid"])


def downgrade() -> None:
    for table in ("feedback_index", "card_index", "chain_anchor", "chain_head", "audit_record"):
        op.drop_table(table)
