"""Alembic migrations of the results database; `runner` applies them (see pipelines.db)."""
