"""Baseline: the schema of radflow before Alembic (issues 1-5).

Revision ID: 0001
Revises:
Create Date: 2026-05-01
"""

from __future__ import annotations

from alembic import op

from pipelines.migrations.baseline import baseline_metadata

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One frozen definition serves this revision and the adoption of pre-Alembic
    # databases (runner.py). checkfirst=False: offline (--sql) mode cannot inspect.
    baseline_metadata().create_all(op.get_bind(), checkfirst=False)


def downgrade() -> None:
    baseline_metadata().drop_all(op.get_bind(), checkfirst=False)
