"""A screening night cut into batches scored by separate tasks (issue 17): the plan, each
batch's staging record and its per-exam results, which the night's merge reads.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "screening_plans",
        sa.Column("task", sa.String(32), primary_key=True),
        sa.Column("study_date", sa.String(10), primary_key=True),
        sa.Column("plan_id", sa.String(16), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("batch_exams", sa.Integer, nullable=False),
        sa.Column("studies", sa.JSON, nullable=False),
        sa.Column("planned_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "screening_batches",
        sa.Column("task", sa.String(32), primary_key=True),
        sa.Column("study_date", sa.String(10), primary_key=True),
        sa.Column("batch", sa.Integer, primary_key=True),
        sa.Column("plan_id", sa.String(16), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("arrays", sa.String(64), nullable=False),
        sa.Column("shadow", sa.JSON, nullable=True),
        sa.Column("stage_seconds", sa.JSON, nullable=False),
        sa.Column("staged_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "screening_staged",
        sa.Column("task", sa.String(32), primary_key=True),
        sa.Column("study_date", sa.String(10), primary_key=True),
        sa.Column("batch", sa.Integer, primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("plan_id", sa.String(16), nullable=False),
        sa.Column("exam_id", sa.String(64), nullable=False),
        sa.Column("study_id", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("suspicion", sa.Integer, nullable=True),
        sa.Column("all_flagged", sa.Boolean, nullable=True),
        sa.Column("views", sa.JSON, nullable=True),
        sa.Column("shadow_score", sa.Float, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("screening_staged")
    op.drop_table("screening_batches")
    op.drop_table("screening_plans")
