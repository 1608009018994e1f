"""Screening results: runs, per-view results, QC flags, device artifact rates (issue 6).

exam_results gains the task, the 1-10 suspicion, why it was flagged, how many views QC
discounted, the run and the device. Existing rows keep their values: the NOT NULL
columns get server defaults ('mammo', 0), so the change is an ALTER TABLE ADD COLUMN
on SQLite as well (batch mode only recreates the table when it must).

Revision ID: 0002
Revises: 0001
Create Date: 2026-05-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_EXAM_COLUMNS = ("task", "suspicion", "flag_reason", "views_discounted", "run_id", "device")


def upgrade() -> None:
    op.create_table(
        "screening_runs",
        sa.Column("run_id", sa.String(96), primary_key=True),
        sa.Column("task", sa.String(32), nullable=False),
        sa.Column("study_date", sa.String(10), nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("shadow_version", sa.String(32), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("exams", sa.Integer, nullable=False),
        sa.Column("flagged", sa.Integer, nullable=False),
        sa.Column("quarantined", sa.Integer, nullable=False),
        sa.Column("views_discounted", sa.Integer, nullable=False),
        sa.Column("capacity", sa.Integer, nullable=True),
        sa.Column("stage_seconds", sa.JSON, nullable=False),
        sa.Column("worklist", sa.String(512), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_screening_runs_study_date", "screening_runs", ["study_date"])

    with op.batch_alter_table("exam_results") as batch:
        batch.add_column(sa.Column("task", sa.String(32), nullable=False, server_default="mammo"))
        batch.add_column(sa.Column("suspicion", sa.Integer, nullable=True))
        batch.add_column(sa.Column("flag_reason", sa.String(32), nullable=True))
        batch.add_column(sa.Column("views_discounted", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("run_id", sa.String(96), nullable=True))
        batch.add_column(sa.Column("device", sa.String(128), nullable=True))

    op.create_table(
        "view_results",
        sa.Column("exam_id", sa.String(64), primary_key=True),
        sa.Column("model_version", sa.String(32), primary_key=True),
        sa.Column("view", sa.String(8), primary_key=True),
        sa.Column("task", sa.String(32), nullable=False),
        sa.Column("study_date", sa.String(10), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("discounted", sa.Boolean, nullable=False),
        sa.Column("qc_reason", sa.Text, nullable=True),
        sa.Column("run_id", sa.String(96), nullable=False),
    )
    op.create_index("ix_view_results_study_date", "view_results", ["study_date"])

    op.create_table(
        "qc_flags",
        sa.Column("exam_id", sa.String(64), primary_key=True),
        sa.Column("view", sa.String(8), primary_key=True),
        sa.Column("code", sa.String(32), primary_key=True),
        sa.Column("study_date", sa.String(10), nullable=False),
        sa.Column("device", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("run_id", sa.String(96), nullable=True),
    )
    op.create_index("ix_qc_flags_study_date", "qc_flags", ["study_date"])

    op.create_table(
        "qc_device_rates",
        sa.Column("study_date", sa.String(10), primary_key=True),
        sa.Column("device", sa.String(128), primary_key=True),
        sa.Column("code", sa.String(32), primary_key=True),
        sa.Column("views", sa.Integer, nullable=False),
        sa.Column("flagged", sa.Integer, nullable=False),
        sa.Column("rate", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("qc_device_rates")
    op.drop_index("ix_qc_flags_study_date", table_name="qc_flags")
    op.drop_table("qc_flags")
    op.drop_index("ix_view_results_study_date", table_name="view_results")
    op.drop_table("view_results")
    with op.batch_alter_table("exam_results") as batch:
        for name in reversed(_EXAM_COLUMNS):
            batch.drop_column(name)
    op.drop_index("ix_screening_runs_study_date", table_name="screening_runs")
    op.drop_table("screening_runs")
