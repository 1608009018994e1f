"""Deployment records in the results database instead of `<state>/serving/*.json` (issue 17:
workers on separate hosts see the same record of what each Triton slot serves).

Only the table is made here: a migration does not know any host's state dir. The JSON
records an installation already has are imported by pipelines/deployments.py on first
use, on the host that holds them (and renamed `*.json.imported`, so once).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("triton_model", sa.String(128), primary_key=True),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("triton_version", sa.Integer, nullable=False),
        sa.Column("operating_point", sa.Float, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("deployed_at", sa.String(32), nullable=False),
        sa.Column("slot", sa.String(16), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("previous_version", sa.Integer, nullable=True),
        sa.Column("previous_sha256", sa.String(64), nullable=False),
        sa.Column("suspicion_cuts", sa.Text, nullable=False),
        sa.Column("task", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("deployments")
