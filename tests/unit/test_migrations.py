"""Alembic migrations of the results database, on SQLite and PostgreSQL.

The models in pipelines/db.py and the migrated schema must agree; a database made by
radflow before Alembic (create_all, no version table) must be adopted with its rows
intact; upgrades are idempotent, reversible to the baseline, and safe to start from
several processes at once.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from pipelines import db
from pipelines.errors import LockHeld
from pipelines.migrations import runner
from pipelines.migrations.baseline import baseline_metadata

HEAD = "0008"
NEW_TABLES = {"screening_runs", "view_results", "qc_flags", "qc_device_rates",  # 0002
              "monitoring_runs", "drift_metrics", "integrity_checks",  # 0003
              "pacs_retrievals", "deliveries", "worklist_feedback", "gateway_deletions",  # 0005
              "outcomes",  # 0006
              "deployments",  # 0007
              "screening_plans", "screening_batches", "screening_staged"}  # 0008
NEW_EXAM_COLUMNS = {"task", "suspicion", "flag_reason", "views_discounted", "run_id", "device"}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a new, empty database (a fresh PostgreSQL database per test)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'results.db'}"
        return
    server_url: str = request.getfixturevalue("postgres_url")
    name = f"radflow_mig_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with closing(admin.connect()) as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        db.engine_for.cache_clear()
        with closing(admin.connect()) as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": name})
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


def _schema_diff(url: str) -> list[Any]:
    eng = _engine(url)
    try:
        with eng.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={
                "compare_type": True, "compare_server_default": True,
                "version_table": runner.VERSION_TABLE})
            return list(compare_metadata(ctx, db.metadata))
    finally:
        eng.dispose()


def _tables(url: str) -> set[str]:
    eng = _engine(url)
    try:
        return set(sa.inspect(eng).get_table_names())
    finally:
        eng.dispose()


def _columns(url: str, table: str) -> set[str]:
    eng = _engine(url)
    try:
        return {c["name"] for c in sa.inspect(eng).get_columns(table)}
    finally:
        eng.dispose()


def _rows(url: str, sql: str) -> list[dict[str, Any]]:
    eng = _engine(url)
    try:
        with eng.connect() as conn:
            return [dict(r) for r in conn.execute(sa.text(sql)).mappings()]
    finally:
        eng.dispose()


def _pre_alembic(url: str, without: tuple[str, ...] = ()) -> None:
    """What `metadata.create_all` made before Alembic (issue 5), with a few rows."""
    baseline = baseline_metadata()
    for name in without:
        baseline.remove(baseline.tables[name])
    eng = _engine(url)
    if eng.dialect.name == "sqlite":  # the old engine_for made every SQLite file WAL
        with eng.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    baseline.create_all(eng)
    screened = dt.datetime(2026, 3, 15, 2, 0, tzinfo=dt.UTC)
    with eng.begin() as conn:
        conn.execute(baseline.tables["pseudonyms"].insert(),
                     [{"kind": "study", "original": "1.2.3.4", "pseudonym": "ex-aaaa0001"}])
        conn.execute(baseline.tables["ingest_state"].insert(),
                     [{"source": "http://pacs", "watermark": 42}])
        conn.execute(baseline.tables["exam_results"].insert(), [
            {"exam_id": "ex-aaaa0001", "model_version": "3", "study_date": "2026-03-14",
             "score": 0.91, "flagged": True, "views_scored": 4,
             "view_scores": {"R-CC": 0.9, "L-CC": 0.1}, "screened_at": screened},
            {"exam_id": "ex-aaaa0002", "model_version": "3", "study_date": "2026-03-14",
             "score": 0.12, "flagged": False, "views_scored": 4, "view_scores": {},
             "screened_at": screened},
        ])
    eng.dispose()


def _exam_results(url: str) -> list[dict[str, Any]]:
    rows = _rows(url, "SELECT * FROM exam_results ORDER BY exam_id")
    for row in rows:  # JSON comes back as text on SQLite through text() queries
        if isinstance(row["view_scores"], str):
            row["view_scores"] = json.loads(row["view_scores"])
        row["flagged"] = bool(row["flagged"])
    return rows


def test_a_fresh_database_goes_to_head_and_matches_the_models(empty_url: str) -> None:
    assert db.current_revision(empty_url) is None
    if empty_url.startswith("sqlite"):  # asking did not create the file
        assert not Path(sa.make_url(empty_url).database or "").exists()
    assert db.migrate(empty_url) == HEAD == db.head_revision()
    assert db.current_revision(empty_url) == HEAD
    assert set(db.metadata.tables) | {runner.VERSION_TABLE} == _tables(empty_url)
    assert _schema_diff(empty_url) == []
    command.check(runner.alembic_config(empty_url))  # `alembic check`: nothing to autogenerate


def test_the_models_differ_from_a_database_at_the_baseline(empty_url: str) -> None:
    # The comparison above can fail: the baseline lacks what revisions 0002 and 0003 add.
    _pre_alembic(empty_url)
    diff = _schema_diff(empty_url)
    added_tables = {d[1].name for d in diff if d[0] == "add_table"}
    added_columns = {d[3].name for d in diff if d[0] == "add_column" and d[2] == "exam_results"}
    assert added_tables == NEW_TABLES
    assert added_columns == NEW_EXAM_COLUMNS


def test_a_pre_alembic_database_is_stamped_and_upgraded_with_its_data(empty_url: str) -> None:
    _pre_alembic(empty_url)
    before = _exam_results(empty_url)
    assert db.current_revision(empty_url) is None

    engine = db.engine_for(empty_url)  # what every stage does on first use

    assert db.current_revision(empty_url) == HEAD
    assert _schema_diff(empty_url) == []
    after = _exam_results(empty_url)
    assert [{k: r[k] for k in before[0]} for r in after] == before
    assert [(r["task"], r["views_discounted"], r["suspicion"], r["flag_reason"], r["run_id"],
             r["device"]) for r in after] == [("mammo", 0, None, None, None, None)] * 2
    assert _rows(empty_url, "SELECT pseudonym FROM pseudonyms") == [{"pseudonym": "ex-aaaa0001"}]
    assert _rows(empty_url, "SELECT watermark FROM ingest_state") == [{"watermark": 42}]
    # The new tables take the screening run's upserts.
    row = {"exam_id": "ex-aaaa0001", "model_version": "3", "view": "R-CC", "task": "mammo",
           "study_date": "2026-03-14", "score": 0.9, "discounted": False, "qc_reason": None,
           "run_id": "mammo/2026-03-14/3"}
    with engine.begin() as conn:
        db.upsert(conn, db.view_results, [row], keys=["exam_id", "model_version", "view"])
        db.upsert(conn, db.view_results, [row | {"score": 0.8}],
                  keys=["exam_id", "model_version", "view"])
    assert _rows(empty_url, "SELECT score FROM view_results") == [{"score": 0.8}]


def test_a_pre_alembic_database_gets_the_baseline_tables_it_lacked(empty_url: str) -> None:
    _pre_alembic(empty_url, without=("shadow_results", "promotions"))  # made before issues 4-5
    assert db.migrate(empty_url) == HEAD
    assert _schema_diff(empty_url) == []
    assert len(_exam_results(empty_url)) == 2


def test_a_pre_alembic_database_lacking_a_baseline_column_is_refused_untouched(
    empty_url: str,
) -> None:
    eng = _engine(empty_url)
    with eng.begin() as conn:  # images before issue 4 had no density column
        conn.execute(sa.text("CREATE TABLE images (exam_id VARCHAR(64), view VARCHAR(8), "
                             "label_source VARCHAR(16), PRIMARY KEY (exam_id, view))"))
    eng.dispose()
    with pytest.raises(runner.SchemaMismatch, match=r"images\.density") as err:
        db.migrate(empty_url)
    assert "images.patient_id" in str(err.value)
    assert _tables(empty_url) == {"images"}  # nothing half-written: one transaction


def test_upgrading_twice_is_a_no_op(empty_url: str) -> None:
    _pre_alembic(empty_url)
    assert db.migrate(empty_url) == HEAD
    first = (_exam_results(empty_url), _tables(empty_url))
    assert db.migrate(empty_url) == HEAD
    db.engine_for(empty_url)
    assert (_exam_results(empty_url), _tables(empty_url)) == first
    assert _rows(empty_url, f"SELECT version_num FROM {runner.VERSION_TABLE}") \
        == [{"version_num": HEAD}]


def test_downgrade_to_the_baseline_keeps_the_rows_and_upgrade_restores_the_columns(
    empty_url: str,
) -> None:
    _pre_alembic(empty_url)
    engine = db.engine_for(empty_url)
    with engine.begin() as conn:
        conn.execute(sa.update(db.exam_results).values(task="cxr-nodule", suspicion=7))
    eng = _engine(empty_url)
    try:
        assert runner.downgrade(eng, "0001") == "0001"
    finally:
        eng.dispose()
    assert _tables(empty_url) == set(baseline_metadata().tables) | {runner.VERSION_TABLE}
    assert _columns(empty_url, "exam_results") == set(baseline_metadata().tables["exam_results"].c.keys())
    assert [r["exam_id"] for r in _exam_results(empty_url)] == ["ex-aaaa0001", "ex-aaaa0002"]
    assert _rows(empty_url, "SELECT count(*) AS n FROM pseudonyms") == [{"n": 1}]

    assert db.migrate(empty_url) == HEAD
    assert _schema_diff(empty_url) == []
    assert {r["task"] for r in _exam_results(empty_url)} == {"mammo"}


def test_a_database_from_a_newer_radflow_is_refused_by_name(empty_url: str) -> None:
    assert db.migrate(empty_url) == HEAD
    eng = _engine(empty_url)
    with eng.begin() as conn:
        conn.execute(sa.text(f"UPDATE {runner.VERSION_TABLE} SET version_num = '0099'"))
    eng.dispose()
    with pytest.raises(runner.SchemaMismatch, match="'0099'"):
        db.engine_for(empty_url)


def test_a_migration_lock_held_too_long_fails_as_transient_and_writes_nothing(
    empty_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    _pre_alembic(empty_url)
    holder = _engine(empty_url)
    monkeypatch.setattr(runner, "LOCK_TIMEOUT_S", 0.5)
    with holder.connect() as conn:  # another process, mid-migration
        if holder.dialect.name == "postgresql":
            conn.execute(sa.text(f"SELECT pg_advisory_lock({runner._PG_LOCK_KEY})"))
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        with pytest.raises(LockHeld):
            db.migrate(empty_url)
        conn.rollback()
        if holder.dialect.name == "postgresql":
            conn.execute(sa.text(f"SELECT pg_advisory_unlock({runner._PG_LOCK_KEY})"))
    holder.dispose()
    assert db.current_revision(empty_url) is None
    assert db.migrate(empty_url) == HEAD  # the retry completes


_MIGRATE_ON_GO = """
import sys, time
from pathlib import Path
from pipelines import db
from pipelines.migrations import runner  # imported before the start line, like a warm worker
import alembic.command, alembic.script
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.005)
print(db.migrate(sys.argv[1]))
"""


def test_processes_starting_at_once_migrate_once_without_error(empty_url: str, tmp_path: Path) -> None:
    _pre_alembic(empty_url)  # adoption (stamp) and upgrade both race
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", _MIGRATE_ON_GO, empty_url, str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    try:
        go.touch()
        outcomes = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0] * 4, [err[-2000:] for _, err in outcomes]
    assert [out.strip() for out, _ in outcomes] == [HEAD] * 4
    assert _rows(empty_url, f"SELECT version_num FROM {runner.VERSION_TABLE}") \
        == [{"version_num": HEAD}]
    assert _schema_diff(empty_url) == []
    assert len(_exam_results(empty_url)) == 2


def test_offline_mode_prints_the_sql_for_a_dba(capsys: pytest.CaptureFixture[str]) -> None:
    command.upgrade(runner.alembic_config("postgresql://dba@db.invalid/results"), "head", sql=True)
    sql = capsys.readouterr().out
    assert "CREATE TABLE pseudonyms" in sql and "CREATE TABLE screening_runs" in sql
    assert "ALTER TABLE exam_results ADD COLUMN task VARCHAR(32) DEFAULT 'mammo' NOT NULL" in sql
    assert f"INSERT INTO {runner.VERSION_TABLE} (version_num) VALUES ('0001')" in sql
