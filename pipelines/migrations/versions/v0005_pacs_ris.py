"""The hospital's PACS and RIS: retrievals of a night, deliveries of results, the
radiologists' feedback from the worklist, the gateway's retention deletions (issue 15).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pacs_retrievals",
        sa.Column("task", sa.String(32), primary_key=True),
        sa.Column("study_date", sa.String(10), primary_key=True),
        sa.Column("exam_id", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("instances", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "deliveries",
        sa.Column("exam_id", sa.String(64), primary_key=True),
        sa.Column("task", sa.String(32), primary_key=True),
        sa.Column("destination", sa.String(16), primary_key=True),
        sa.Column("study_date", sa.String(10), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("content", sa.JSON, nullable=False),
        sa.Column("superseded", sa.JSON, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_deliveries_study_date", "deliveries", ["study_date"])
    op.create_table(
        "worklist_feedback",
        sa.Column("exam_id", sa.String(64), primary_key=True),
        sa.Column("task", sa.String(32), primary_key=True),
        sa.Column("reader", sa.String(128), primary_key=True),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("study_date", sa.String(10), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("flagged", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_worklist_feedback_study_date", "worklist_feedback", ["study_date"])
    op.create_table(
        "gateway_deletions",
        sa.Column("exam_id", sa.String(64), primary_key=True),
        sa.Column("study_date", sa.String(10), nullable=False),
        sa.Column("instances", sa.Integer, nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("gateway_deletions")
    op.drop_index("ix_worklist_feedback_study_date", "worklist_feedback")
    op.drop_table("worklist_feedback")
    op.drop_index("ix_deliveries_study_date", "deliveries")
    op.drop_table("deliveries")
    op.drop_table("pacs_retrievals")
