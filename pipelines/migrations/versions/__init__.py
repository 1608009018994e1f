"""Alembic revisions of the results database, one module per revision."""
