"""The hospital database: pseudonym key, ingest watermark, manifest, quarantine, audit, results.

One SQLAlchemy Core schema serves PostgreSQL (production, CI) and a SQLite file (the
embedded default). Writes are upserts keyed by natural keys so that a retry adds nothing.
The tables here are the models; the schema itself is made by the Alembic revisions in
pipelines/migrations (a change here needs a new revision, and a test checks they agree).
Every engine brings its database to the head revision on first use.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql import Insert as PgInsert
    from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
    from sqlalchemy.engine import Connection, Engine

    from pipelines.errors import DatabaseUnavailable

metadata = sa.MetaData()

# The re-identification key. It lives here, in the hospital database, never in the lake.
pseudonyms = sa.Table(
    "pseudonyms",
    metadata,
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("original", sa.String(128), primary_key=True),
    sa.Column("pseudonym", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
)

# De-identification date shifts (PS3.15 Modified Dates option), keyed by patient pseudonym.
date_offsets = sa.Table(
    "date_offsets",
    metadata,
    sa.Column("patient_pseudonym", sa.String(64), primary_key=True),
    sa.Column("offset_days", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
)

ingest_state = sa.Table(
    "ingest_state",
    metadata,
    sa.Column("source", sa.String(256), primary_key=True),
    sa.Column("watermark", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
)

# The manifest: one row per ingested view, keyed by pseudonymous exam and view.
images = sa.Table(
    "images",
    metadata,
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
    sa.Column("label_source", sa.String(16), nullable=True),  # birads-report|birads-addendum|pathology|none
    sa.Column("density", sa.String(1), nullable=True),  # ACR breast density A-D stated in the report
    sa.Column("image_path", sa.String(512), nullable=False),
    sa.Column("pixel_mean", sa.Float, nullable=False),
    sa.Column("ingest_seq", sa.BigInteger, nullable=False),
)

quarantine = sa.Table(
    "quarantine",
    metadata,
    sa.Column("stage", sa.String(32), primary_key=True),
    sa.Column("item_id", sa.String(128), primary_key=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
)

# The audit trail of alias `champion`: every promotion (promoted or refused by the gate)
# and every rollback, with who approved it, why, and the gate's checks. Append-only.
promotions = sa.Table(
    "promotions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),  # promote | rollback
    sa.Column("version", sa.String(32), nullable=False),  # the version made (or refused as) champion
    sa.Column("alias", sa.String(32), nullable=False),
    sa.Column("previous_version", sa.String(32), nullable=True),  # champion when the action ran
    sa.Column("approver", sa.String(128), nullable=False),  # the login (Airflow or MLflow)
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),  # promoted | refused | rolled_back
    sa.Column("gates", sa.Text, nullable=False),  # JSON: the gate's checks and skipped subgroups
    sa.Column("dataset_version", sa.String(64), nullable=True),  # DVC hash the gate scored on
    sa.Column("report_run_id", sa.String(64), nullable=True),  # MLflow run with the report
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    sa.Column("approver_name", sa.String(256), nullable=True),  # display name of the login
    sa.Column("approved_via", sa.String(16), nullable=True),  # airflow | mlflow: who authenticated it
)

exam_results = sa.Table(
    "exam_results",
    metadata,
    sa.Column("exam_id", sa.String(64), primary_key=True),
    sa.Column("model_version", sa.String(32), primary_key=True),
    sa.Column("study_date", sa.String(10), nullable=False, index=True),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("flagged", sa.Boolean, nullable=False),
    sa.Column("views_scored", sa.Integer, nullable=False),
    sa.Column("view_scores", sa.JSON, nullable=False),
    sa.Column("screened_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    sa.Column("task", sa.String(32), nullable=False, server_default="mammo"),
    sa.Column("suspicion", sa.Integer, nullable=True),  # 1-10, calibrated on validation
    sa.Column("flag_reason", sa.String(32), nullable=True),  # why flagged: operating point | capacity
    sa.Column("views_discounted", sa.Integer, nullable=False, server_default="0"),  # by image QC
    sa.Column("run_id", sa.String(96), nullable=True),  # screening_runs.run_id
    sa.Column("device", sa.String(128), nullable=True),
)


# The shadow model's scores of the same exams: compared with the champion, never on the worklist.
shadow_results = sa.Table(
    "shadow_results",
    metadata,
    sa.Column("exam_id", sa.String(64), primary_key=True),
    sa.Column("model_version", sa.String(32), primary_key=True),  # the shadow's version
    sa.Column("champion_version", sa.String(32), nullable=False),
    sa.Column("study_date", sa.String(10), nullable=False, index=True),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("flagged", sa.Boolean, nullable=False),
    sa.Column("champion_score", sa.Float, nullable=False),
    sa.Column("champion_flagged", sa.Boolean, nullable=False),
    sa.Column("screened_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
)

# One night of one screening task with one model: "<task>/<study_date>/<model_version>".
screening_runs = sa.Table(
    "screening_runs",
    metadata,
    sa.Column("run_id", sa.String(96), primary_key=True),
    sa.Column("task", sa.String(32), nullable=False),
    sa.Column("study_date", sa.String(10), nullable=False, index=True),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("shadow_version", sa.String(32), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),  # running | complete | failed
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("exams", sa.Integer, nullable=False),
    sa.Column("flagged", sa.Integer, nullable=False),
    sa.Column("quarantined", sa.Integer, nullable=False),
    sa.Column("views_discounted", sa.Integer, nullable=False),
    sa.Column("capacity", sa.Integer, nullable=True),  # daily reading capacity (top k), if set
    sa.Column("stage_seconds", sa.JSON, nullable=False),
    sa.Column("worklist", sa.String(512), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
)

# Each view's score; a view discounted by image QC carries the reason.
view_results = sa.Table(
    "view_results",
    metadata,
    sa.Column("exam_id", sa.String(64), primary_key=True),
    sa.Column("model_version", sa.String(32), primary_key=True),
    sa.Column("view", sa.String(8), primary_key=True),
    sa.Column("task", sa.String(32), nullable=False),
    sa.Column("study_date", sa.String(10), nullable=False, index=True),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("discounted", sa.Boolean, nullable=False),
    sa.Column("qc_reason", sa.Text, nullable=True),
    sa.Column("run_id", sa.String(96), nullable=False),
)

# Image-quality problems found per view (domain.QC_CODES), independent of the model.
qc_flags = sa.Table(
    "qc_flags",
    metadata,
    sa.Column("exam_id", sa.String(64), primary_key=True),
    sa.Column("view", sa.String(8), primary_key=True),
    sa.Column("code", sa.String(32), primary_key=True),
    sa.Column("study_date", sa.String(10), nullable=False, index=True),
    sa.Column("device", sa.String(128), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("run_id", sa.String(96), nullable=True),
)

# Artifact rates per device and night, every QC code (zeros included).
qc_device_rates = sa.Table(
    "qc_device_rates",
    metadata,
    sa.Column("study_date", sa.String(10), primary_key=True),
    sa.Column("device", sa.String(128), primary_key=True),
    sa.Column("code", sa.String(32), primary_key=True),
    sa.Column("views", sa.Integer, nullable=False),
    sa.Column("flagged", sa.Integer, nullable=False),
    sa.Column("rate", sa.Float, nullable=False),
)


# Monitoring (pipelines/monitoring): one row per monitored night and model version.
monitoring_runs = sa.Table(
    "monitoring_runs",
    metadata,
    sa.Column("run_id", sa.String(96), primary_key=True),  # task/study_date/model_version
    sa.Column("task", sa.String(32), nullable=False),
    sa.Column("study_date", sa.String(10), nullable=False, index=True),
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

# The drift time series: every test of every monitored night (records.DriftTest).
drift_metrics = sa.Table(
    "drift_metrics",
    metadata,
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

# Model-file integrity of what Triton serves, checked daily (records.IntegrityRow).
integrity_checks = sa.Table(
    "integrity_checks",
    metadata,
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

# The hospital's PACS and RIS (issue 15). Keys are pseudonyms: nothing here identifies anyone.

# What was asked of the PACS for a night (pull mode): one row per study the PACS listed.
pacs_retrievals = sa.Table(
    "pacs_retrievals",
    metadata,
    sa.Column("task", sa.String(32), primary_key=True),
    sa.Column("study_date", sa.String(10), primary_key=True),
    sa.Column("exam_id", sa.String(64), primary_key=True),  # the study's pseudonym
    sa.Column("status", sa.String(16), nullable=False),  # retrieved | failed
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("instances", sa.Integer, nullable=False),  # in the gateway after the retrieve
    sa.Column("reason", sa.Text, nullable=True),  # why it failed (no identifying value)
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# Results delivered to the PACS and the RIS: one row per exam, task and destination
# ("pacs", "ris-hl7", "ris-fhir"). `content` identifies what the destination holds now
# (SOP Instance UIDs, message control id); a rerun with the same content sends nothing.
deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("exam_id", sa.String(64), primary_key=True),
    sa.Column("task", sa.String(32), primary_key=True),
    sa.Column("destination", sa.String(16), primary_key=True),
    sa.Column("study_date", sa.String(10), nullable=False, index=True),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # sent | failed
    sa.Column("attempts", sa.Integer, nullable=False),  # sends tried, retries included
    sa.Column("content", sa.JSON, nullable=False),  # what the destination holds (UIDs, ids)
    sa.Column("superseded", sa.JSON, nullable=False),  # earlier content it was told to drop
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# What radiologists said about a screened exam on the worklist: training signal.
worklist_feedback = sa.Table(
    "worklist_feedback",
    metadata,
    sa.Column("exam_id", sa.String(64), primary_key=True),
    sa.Column("task", sa.String(32), primary_key=True),
    sa.Column("reader", sa.String(128), primary_key=True),  # the login that said it
    sa.Column("verdict", sa.String(16), nullable=False),  # agree | disagree | artifact
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("study_date", sa.String(10), nullable=False, index=True),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("flagged", sa.Boolean, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# Studies the gateway deleted under the retention policy (the PACS keeps them).
gateway_deletions = sa.Table(
    "gateway_deletions",
    metadata,
    sa.Column("exam_id", sa.String(64), primary_key=True),
    sa.Column("study_date", sa.String(10), nullable=False),
    sa.Column("instances", sa.Integer, nullable=False),
    sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
)

# What happened to a screened exam, per breast (issue 16, pipelines/outcomes): pathology or a
# follow-up BI-RADS, the one that ranks highest (pipelines/outcomes/truth.py). Pseudonyms only.
outcomes = sa.Table(
    "outcomes",
    metadata,
    sa.Column("exam_id", sa.String(64), primary_key=True),  # the exam (study) pseudonym
    sa.Column("side", sa.String(1), primary_key=True),  # R | L
    sa.Column("source", sa.String(16), nullable=False),  # pathology | follow-up
    sa.Column("malignant", sa.Boolean, nullable=True),  # pathology's result
    sa.Column("birads", sa.Integer, nullable=True),  # the follow-up report's category
    sa.Column("outcome_date", sa.String(10), nullable=True),  # ISO date of the result or report
    sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
)

# What each Triton slot serves (pipelines/deployments.py): one row per slot per task, keyed
# by the slot's Triton model, with the previous version kept on disk for rollback.
deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("triton_model", sa.String(128), primary_key=True),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("triton_version", sa.Integer, nullable=False),
    sa.Column("operating_point", sa.Float, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("deployed_at", sa.String(32), nullable=False),  # ISO 8601, UTC, as recorded
    sa.Column("slot", sa.String(16), nullable=False),  # champion | shadow
    sa.Column("name", sa.String(128), nullable=False),  # the name in `mlflow deployments`
    sa.Column("previous_version", sa.Integer, nullable=True),
    sa.Column("previous_sha256", sa.String(64), nullable=False),
    sa.Column("suspicion_cuts", sa.Text, nullable=False),  # JSON deciles, "" when none
    sa.Column("task", sa.String(32), nullable=False),
)

# A screening night cut into scoring batches (pipelines/screening/batches.py, staging.py):
# the plan, then per batch what it staged (replaced with its batch, read by the merge).
screening_plans = sa.Table(
    "screening_plans",
    metadata,
    sa.Column("task", sa.String(32), primary_key=True),
    sa.Column("study_date", sa.String(10), primary_key=True),
    sa.Column("plan_id", sa.String(16), nullable=False),  # digest of what the plan lists
    sa.Column("model_version", sa.String(32), nullable=False),  # the champion it was made for
    sa.Column("batch_exams", sa.Integer, nullable=False),
    sa.Column("studies", sa.JSON, nullable=False),  # [[exam pseudonym, Orthanc study id], ...] in order
    sa.Column("planned_at", sa.DateTime(timezone=True), nullable=False),
)

screening_batches = sa.Table(
    "screening_batches",
    metadata,
    sa.Column("task", sa.String(32), primary_key=True),
    sa.Column("study_date", sa.String(10), primary_key=True),
    sa.Column("batch", sa.Integer, primary_key=True),
    sa.Column("plan_id", sa.String(16), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("arrays", sa.String(64), nullable=False),  # token of the staged arrays' files
    sa.Column("shadow", sa.JSON, nullable=True),  # model_version, operating_point, error
    sa.Column("stage_seconds", sa.JSON, nullable=False),
    sa.Column("staged_at", sa.DateTime(timezone=True), nullable=False),
)

screening_staged = sa.Table(
    "screening_staged",
    metadata,
    sa.Column("task", sa.String(32), primary_key=True),
    sa.Column("study_date", sa.String(10), primary_key=True),
    sa.Column("batch", sa.Integer, primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),  # in the night's plan
    sa.Column("plan_id", sa.String(16), nullable=False),
    sa.Column("exam_id", sa.String(64), nullable=False),
    sa.Column("study_id", sa.String(64), nullable=False),  # Orthanc id
    sa.Column("reason", sa.Text, nullable=True),  # quarantined: why (then no score)
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("suspicion", sa.Integer, nullable=True),
    sa.Column("all_flagged", sa.Boolean, nullable=True),
    sa.Column("views", sa.JSON, nullable=True),  # view, score, device, instance, input box, QC flags
    sa.Column("shadow_score", sa.Float, nullable=True),
)


@functools.cache
def engine_for(url: str) -> Engine:
    """A pooled engine for `url`, its database migrated to the head revision on first use.

    Raises:
        LockHeld: another process kept the migration lock too long (retry later).
        SchemaMismatch: the database cannot be migrated by this radflow (see runner).
    """
    from pipelines.migrations import runner

    eng = _create_engine(url)
    try:
        runner.upgrade(eng)
    except BaseException:
        eng.dispose()
        raise
    return eng


def migrate(url: str) -> str:
    """Bring the database at `url` to the head revision (idempotent); return the revision."""
    from pipelines.migrations import runner

    database = sa.make_url(url).database
    if url.startswith("sqlite") and database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    eng = _create_engine(url)
    try:
        return runner.upgrade(eng)
    finally:
        eng.dispose()


def current_revision(url: str) -> str | None:
    """The schema revision of the database at `url`; None if never migrated (no changes made)."""
    from pipelines.migrations import runner

    eng = _create_engine(url)
    try:
        return runner.current_revision(eng)
    finally:
        eng.dispose()


def head_revision() -> str:
    """The newest schema revision this radflow ships."""
    from pipelines.migrations import runner

    return runner.head_revision()


def _create_engine(url: str) -> Engine:
    # hide_parameters: a failed statement's message must never quote identifiers (PHI).
    eng = sa.create_engine(url, pool_pre_ping=True, hide_parameters=True)
    if url.startswith("sqlite"):
        _sqlite_wal(eng)
    return eng


def get_engine() -> Engine:
    """The engine of the configured results database."""
    from pipelines.config import get_settings

    settings = get_settings()
    if settings.db_url.startswith("sqlite"):
        settings.state.mkdir(parents=True, exist_ok=True)
    return engine_for(settings.db_url)


def _sqlite_wal(eng: Engine) -> None:
    @sa.event.listens_for(eng, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=30000")  # first: switching to WAL may wait for a writer
        cur.execute("PRAGMA journal_mode=WAL")
        cur.close()


def _insert(conn: Connection, table: sa.Table) -> PgInsert | SqliteInsert:
    """An INSERT into `table` that can take ON CONFLICT: the generic one cannot, and
    PostgreSQL and SQLite (the only two databases radflow runs on) each have their own."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    return insert(table)


def insert_if_absent(conn: Connection, table: sa.Table, row: Mapping[str, Any],
                     keys: Sequence[str]) -> bool:
    """Insert `row` unless a row with the same `keys` exists; that row is left as it is.

    Safe against a concurrent writer of the same key (ON CONFLICT DO NOTHING, not a
    select first): whoever inserts first wins, and both then read the winner's row.

    Args:
        conn: a connection to PostgreSQL or SQLite.
        table: the table; `keys` must be its primary key or a unique constraint.
        row: column -> value of the new row.
        keys: the columns that identify the row.

    Returns:
        True if the row was inserted, False if one with the same keys was already there.
    """
    stmt = _insert(conn, table).values(dict(row)).on_conflict_do_nothing(index_elements=list(keys))
    return conn.execute(stmt).rowcount == 1


def upsert(
    conn: Connection, table: sa.Table, rows: Iterable[Mapping[str, Any]], keys: list[str]
) -> int:
    """Insert rows, replacing the non-key columns of rows whose `keys` already exist."""
    rows = [dict(r) for r in rows]
    if not rows:
        return 0
    stmt = _insert(conn, table).values(rows)
    updates = {c: stmt.excluded[c] for c in rows[0] if c not in keys}
    if updates:
        stmt = stmt.on_conflict_do_update(index_elements=keys, set_=updates)
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=keys)
    conn.execute(stmt)
    return len(rows)


def redacted_url(url: str) -> str:
    """The database URL without its password (safe to print and log)."""
    return sa.engine.make_url(url).render_as_string(hide_password=True)


# SQLSTATEs of a PostgreSQL server going away: admin_shutdown (a restart, pg_terminate_backend),
# crash_shutdown, cannot_connect_now (starting up or shutting down); psycopg2 gives none
# (None) for a refused or dropped connection.
_GONE = (None, "57P01", "57P02", "57P03")


def _gone(exc: BaseException) -> bool:
    """Whether a database error is the server unreachable or ending the session."""
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    code = getattr(exc.orig, "pgcode", "none")  # psycopg2's errors have one (maybe None); SQLite's not
    return isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)) and code in _GONE


def unavailable(exc: BaseException) -> DatabaseUnavailable | None:
    """DatabaseUnavailable naming the results database (its URL without the password) when
    `exc`, or an error it arose from, means the server could not be reached or ended the
    session; else None (an answer: a constraint, bad data, a bug)."""
    from pipelines.config import get_settings
    from pipelines.errors import DatabaseUnavailable

    seen: BaseException | None = exc
    for _ in range(8):  # a short chain; bounded all the same
        if seen is None:
            return None
        if _gone(seen):
            url = sa.engine.make_url(get_settings().db_url)
            server = "PostgreSQL" if url.get_backend_name() == "postgresql" else url.get_backend_name()
            detail = (str(getattr(seen, "orig", "")).strip().splitlines() or [type(seen).__name__])[0]
            return DatabaseUnavailable(f"the results database ({server} at {redacted_url(str(url))}) did "
                                       f"not answer or ended the session: {detail}")
        seen = seen.__cause__ or seen.__context__
    return None
