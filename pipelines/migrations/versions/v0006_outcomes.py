"""Outcomes of screened exams per breast: pathology or a follow-up BI-RADS (issue 16).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outcomes",
        sa.Column("exam_id", sa.String(64), primary_key=True),
        sa.Column("side", sa.String(1), primary_key=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("malignant", sa.Boolean, nullable=True),
        sa.Column("birads", sa.Integer, nullable=True),
        sa.Column("outcome_date", sa.String(10), nullable=True),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("outcomes")
