"""The approver of a change of champion is a login: keep its display name and how it
authenticated (Airflow or MLflow) beside it (issue 13).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("promotions") as batch:
        batch.add_column(sa.Column("approver_name", sa.String(256), nullable=True))
        batch.add_column(sa.Column("approved_via", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("promotions") as batch:
        batch.drop_column("approved_via")
        batch.drop_column("approver_name")
