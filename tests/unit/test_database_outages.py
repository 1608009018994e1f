"""A results database that cannot be reached, or that ends the session (a restart, a network
cut), is an outage: DatabaseUnavailable, naming the database without its password (a retry may
succeed). Before (issue 18, item 4), a command met by a PostgreSQL restart ended with
"OperationalError: (psycopg2.OperationalError) terminating connection due to administrator
command", which names neither the service nor a retry. Real PostgreSQL (the session's server)."""

from __future__ import annotations

import json
import socket
from contextlib import closing

import pytest
import sqlalchemy as sa

from pipelines import config, db
from pipelines.cli import main
from pipelines.errors import DatabaseUnavailable


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"postgresql+psycopg2://radflow:not-for-logs@127.0.0.1:{sock.getsockname()[1]}/radflow"


def test_a_refused_connection_names_the_results_database(monkeypatch: pytest.MonkeyPatch) -> None:
    url = _closed_port_url()
    monkeypatch.setenv("RADFLOW_DATABASE_URL", url)
    config.reset_settings()
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with pytest.raises(sa.exc.OperationalError) as raised:
        engine.connect()
    outage = db.unavailable(raised.value)
    assert isinstance(outage, DatabaseUnavailable)
    assert f"the results database (PostgreSQL at {db.redacted_url(url)})" in str(outage)
    assert "not-for-logs" not in str(outage)


def test_a_session_the_server_ended_is_an_outage(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url, poolclass=sa.pool.NullPool)
    admin = sa.create_engine(postgres_url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
    with closing(engine.connect()) as conn, closing(admin.connect()) as other:
        pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        other.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})  # what a restart does
        with pytest.raises(sa.exc.DBAPIError) as raised:
            conn.execute(sa.text("SELECT 1"))
    assert isinstance(db.unavailable(raised.value), DatabaseUnavailable)


def test_an_answer_is_not_an_outage(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url, poolclass=sa.pool.NullPool)
    with closing(engine.connect()) as conn, pytest.raises(sa.exc.DBAPIError) as raised:
        conn.execute(sa.text("SELECT * FROM no_such_table"))
    assert db.unavailable(raised.value) is None
    sqlite = sa.create_engine("sqlite://")
    with closing(sqlite.connect()) as conn, pytest.raises(sa.exc.OperationalError) as missing:
        conn.execute(sa.text("SELECT * FROM no_such_table"))  # SQLite's OperationalError: an answer
    assert db.unavailable(missing.value) is None


def test_a_command_reports_the_outage_naming_the_database(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    url = _closed_port_url()
    monkeypatch.setenv("RADFLOW_DATABASE_URL", url)
    config.reset_settings()
    assert main(["db", "current", "--json"]) == 1
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["type"] == "DatabaseUnavailable", out
    assert "results database (PostgreSQL at" in out["error"] and "not-for-logs" not in out["error"]


def test_ingest_never_quarantines_a_study_for_a_database_outage(monkeypatch: pytest.MonkeyPatch) -> None:
    """A study whose commit met a restart of the database is not the study's fault: before,
    ingest quarantined it ("the results database refused the exam") and moved the watermark
    past it, so a good study was set aside; now the run stops and a retry commits it."""
    from pipelines.ingest import run as ingest
    from pipelines.ingest.prepare import Prepared

    engine = sa.create_engine(_closed_port_url(), poolclass=sa.pool.NullPool)
    with pytest.raises(sa.exc.OperationalError) as refused:
        engine.connect()

    def commit_meets_a_restart(*args: object) -> str:
        raise refused.value

    monkeypatch.setattr(ingest, "commit_study", commit_meets_a_restart)
    with pytest.raises(DatabaseUnavailable):
        ingest.ingest_prepared(Prepared("study-1"), 7, "orthanc")
    with db.get_engine().connect() as conn:  # the unit test's own (SQLite) results database
        assert conn.execute(sa.select(db.quarantine)).all() == []
        assert ingest.read_watermark(conn, "orthanc") == 0
