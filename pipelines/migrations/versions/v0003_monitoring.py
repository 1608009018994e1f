"""Monitoring: monitored nights, the drift time series, model-file integrity checks (issue 7).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitoring_runs",
        sa.Column("run_id", sa.String(96), primary_key=True),
        sa.Column("task", sa.String(32), nullable=False),
        sa.Column("study_date", sa.String(10), nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("exams", sa.Integer, nullable=False),
        sa.Column("reference_exams", sa.Integer, nullable=False),
        sa.Column("judged", sa.Boolean, nullable=False),
        sa.Column("drifted_families", sa.JSON, nullable=False),
        sa.Column("sustained_families", sa.JSON, nullable=False),
        sa.Column("alert", sa.Boolean, nullable=False),
        sa.Column("alert_reason", sa.Text, nullable=True),
        sa.Column("integrity_ok", sa.Boolean, nullable=True),
        sa.Column("report", sa.String(512), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_monitoring_runs_study_date", "monitoring_runs", ["study_date"])
    op.create_table(
        "drift_metrics",
        sa.Column("task", sa.String(32), primary_key=True),
        sa.Column("study_date", sa.String(10), primary_key=True),
        sa.Column("model_version", sa.String(32), primary_key=True),
        sa.Column("family", sa.String(16), primary_key=True),
        sa.Column("feature", sa.String(192), primary_key=True),
        sa.Column("test", sa.String(16), primary_key=True),
        sa.Column("statistic", sa.Float, nullable=False),
        sa.Column("p_value", sa.Float, nullable=True),
        sa.Column("q_value", sa.Float, nullable=True),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("drifted", sa.Boolean, nullable=False),
        sa.Column("reference_n", sa.Integer, nullable=False),
        sa.Column("current_n", sa.Integer, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_table(
        "integrity_checks",
        sa.Column("check_date", sa.String(10), primary_key=True),
        sa.Column("triton_model", sa.String(128), primary_key=True),
        sa.Column("version", sa.String(32), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("served", sa.Boolean, nullable=False),
        sa.Column("expected_sha256", sa.String(64), nullable=False),
        sa.Column("actual_sha256", sa.String(64), nullable=False),
        sa.Column("registered", sa.String(192), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("integrity_checks")
    op.drop_table("drift_metrics")
    op.drop_index("ix_monitoring_runs_study_date", table_name="monitoring_runs")
    op.drop_table("monitoring_runs")
