"""The schema radflow had before Alembic (revision 0001), frozen.

Until issue 6, `db.engine_for` called `metadata.create_all`, so every existing database
holds these tables and no version table. Revision 0001 creates them on an empty
database, and the runner adopts a pre-Alembic database by creating the baseline tables
it lacks (what `create_all` would have done) and stamping it at 0001.

Never edit this module: later schema changes are new revisions in `versions/`.
"""

from __future__ import annotations

import sqlalchemy as sa

BASELINE_REVISION = "0001"


def baseline_metadata() -> sa.MetaData:
    """A new MetaData holding exactly the pre-Alembic tables (pipelines/db.py of issue 5)."""
    meta = sa.MetaData()
    _identity_tables(meta)
    _ingest_tables(meta)
    _result_tables(meta)
    return meta


def _identity_tables(meta: sa.MetaData) -> None:
    sa.Table(
        "pseudonyms", meta,
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("original", sa.String(128), primary_key=True),
        sa.Column("pseudonym", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    )
    sa.Table(
        "date_offsets", meta,
        sa.Column("patient_pseudonym", sa.String(64), primary_key=True),
        sa.Column("offset_days", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    )


def _ingest_tables(meta: sa.MetaData) -> None:
    sa.Table(
        "ingest_state", meta,
        sa.Column("source", sa.String(256), primary_key=True),
        sa.Column("watermark", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    )
    sa.Table(
        "images", meta,
        sa.Column("exam_id", sa.String(64), primary_key=True),
        sa.Column("view", sa.String(8), primary_key=True),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("instance_id", sa.String(64), nullable=False, unique=True),
        sa.Column("study_date", sa.String(10), nullable=False),
        sa.Column("laterality", sa.String(1), nullable=False),
        sa.Column("view_position", sa.String(8), nullable=False),
        sa.Column("modality", sa.String(8), nullable=False),
        sa.Column("manufacturer", sa.String(64), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("columns", sa.Integer, nullable=False),
        sa.Column("bits_stored", sa.Integer, nullable=False),
        sa.Column("pixel_spacing_mm", sa.Float, nullable=False),
        sa.Column("photometric", sa.String(16), nullable=False),
        sa.Column("patient_age", sa.Integer, nullable=True),
        sa.Column("birads", sa.Integer, nullable=True),
        sa.Column("label", sa.Integer, nullable=True),
        sa.Column("label_source", sa.String(16), nullable=True),
        sa.Column("density", sa.String(1), nullable=True),
        sa.Column("image_path", sa.String(512), nullable=False),
        sa.Column("pixel_mean", sa.Float, nullable=False),
        sa.Column("ingest_seq", sa.BigInteger, nullable=False),
    )
    sa.Table(
        "quarantine", meta,
        sa.Column("stage", sa.String(32), primary_key=True),
        sa.Column("item_id", sa.String(128), primary_key=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    )


def _result_tables(meta: sa.MetaData) -> None:
    sa.Table(
        "promotions", meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("alias", sa.String(32), nullable=False),
        sa.Column("previous_version", sa.String(32), nullable=True),
        sa.Column("approver", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("gates", sa.Text, nullable=False),
        sa.Column("dataset_version", sa.String(64), nullable=True),
        sa.Column("report_run_id", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    )
    sa.Table(
        "exam_results", meta,
        sa.Column("exam_id", sa.String(64), primary_key=True),
        sa.Column("model_version", sa.String(32), primary_key=True),
        sa.Column("study_date", sa.String(10), nullable=False, index=True),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("flagged", sa.Boolean, nullable=False),
        sa.Column("views_scored", sa.Integer, nullable=False),
        sa.Column("view_scores", sa.JSON, nullable=False),
        sa.Column("screened_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    )
    sa.Table(
        "shadow_results", meta,
        sa.Column("exam_id", sa.String(64), primary_key=True),
        sa.Column("model_version", sa.String(32), primary_key=True),
        sa.Column("champion_version", sa.String(32), nullable=False),
        sa.Column("study_date", sa.String(10), nullable=False, index=True),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("flagged", sa.Boolean, nullable=False),
        sa.Column("champion_score", sa.Float, nullable=False),
        sa.Column("champion_flagged", sa.Boolean, nullable=False),
        sa.Column("screened_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    )
