"""JWT ids already used: replay protection shared by every worker and replica.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "seen_jti",
        sa.Column("iss", sa.String(512), primary_key=True),
        sa.Column("jti", sa.String(256), primary_key=True),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_seen_jti_expires", "seen_jti", ["expires_at"])


def downgrade() -> None:
    op.drop_table("seen_jti")
