"""Bring a results database to the head revision, safely, from any process.

No `alembic.ini` is needed: the Alembic configuration is built here, pointing at this
package. Every upgrade runs in one transaction holding a database-wide lock, so that two
processes starting at once (Airflow workers, a CLI call) migrate once and the second
one finds the work done:
- PostgreSQL: a session advisory lock (`pg_try_advisory_lock`) and transactional DDL;
- SQLite: `BEGIN IMMEDIATE` (the file's write lock) on a connection whose DDL runs
  inside that transaction, so a failed migration leaves nothing half-written.

A database created by radflow before Alembic (baseline tables, no version table) is
adopted: the baseline tables it lacks are created, as `create_all` used to, its columns
are checked against the baseline, and it is stamped at 0001 before upgrading.

The version table is `radflow_alembic_version`, not Alembic's default, so the results
database may share a PostgreSQL database with MLflow or Airflow (which own an
`alembic_version` of their own). New revisions: `command.revision(alembic_config(url),
message=..., rev_id="0003", autogenerate=True)`, reviewed by hand before commit.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from pipelines.errors import LockHeld, SchemaMismatch
from pipelines.migrations.baseline import BASELINE_REVISION, baseline_metadata

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection, Engine

VERSION_TABLE = "radflow_alembic_version"
LOCK_TIMEOUT_S = 300.0
_PG_LOCK_KEY = 0x72616466_6C6F77  # "radflow" in ASCII; advisory locks are per database
_HERE = Path(__file__).resolve().parent


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    """The Alembic configuration of the results database, built without an ini file.

    Args:
        url: database URL, used only when no connection is given (e.g. `alembic --sql`).
        connection: an open connection the migration commands run on (and commit with).
    """
    import sys

    from alembic.config import Config

    cfg = Config(stdout=sys.stdout)  # the stream of now (Alembic's default is bound at import)
    cfg.set_main_option("script_location", str(_HERE))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("file_template", "v%%(rev)s_%%(slug)s")  # importable module names
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest revision shipped with this radflow."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "pipelines/migrations/versions holds no revision"
    return head


def revision_of(conn: Connection) -> str | None:
    """The database's revision, or None when it has no version table (new or pre-Alembic)."""
    from alembic.runtime.migration import MigrationContext

    ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    return ctx.get_current_revision()


def current_revision(engine: Engine) -> str | None:
    """The revision of the database behind `engine` (read only, takes no lock)."""
    database = engine.url.database
    if engine.url.get_backend_name() == "sqlite" and database and database != ":memory:" \
            and not Path(database).exists():
        return None  # connecting would create the file
    with engine.connect() as conn:
        return revision_of(conn)


def upgrade(engine: Engine, target: str = "head") -> str:
    """Migrate the database behind `engine` up to `target`; a no-op when it is there.

    Returns:
        The database's revision afterwards.

    Raises:
        LockHeld: another process held the migration lock for LOCK_TIMEOUT_S.
        SchemaMismatch: the database is at a revision this radflow does not know, or is
            a pre-Alembic database lacking baseline columns.
    """
    from alembic import command

    wanted = head_revision() if target == "head" else target
    with engine.connect() as conn:
        if revision_of(conn) == wanted:  # the common case, without taking the lock
            return wanted
    with _migration_transaction(engine) as conn:
        _check_known(revision_of(conn))
        if _is_pre_alembic(conn):
            _adopt(conn)
        command.upgrade(alembic_config(connection=conn), target)
        return revision_of(conn) or ""


def downgrade(engine: Engine, target: str) -> str | None:
    """Migrate the database behind `engine` down to `target` ("base" drops everything)."""
    from alembic import command

    with _migration_transaction(engine) as conn:
        command.downgrade(alembic_config(connection=conn), target)
        return revision_of(conn)


def _check_known(revision: str | None) -> None:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    if revision is None:
        return
    try:
        ScriptDirectory.from_config(alembic_config()).get_revision(revision)
    except CommandError:
        raise SchemaMismatch(
            f"the database is at schema revision {revision!r}, which this radflow does not "
            f"know (head {head_revision()!r}): it was migrated by a newer radflow") from None


def _is_pre_alembic(conn: Connection) -> bool:
    tables = set(sa.inspect(conn).get_table_names())
    return VERSION_TABLE not in tables and bool(tables & set(baseline_metadata().tables))


def _adopt(conn: Connection) -> None:
    """Create the baseline tables a pre-Alembic database lacks, check the rest, stamp 0001."""
    from alembic import command

    baseline = baseline_metadata()
    baseline.create_all(conn, checkfirst=True)
    inspector = sa.inspect(conn)
    missing = [f"{table.name}.{column}"
               for table in baseline.sorted_tables
               for column in sorted(set(table.columns.keys())
                                    - {c["name"] for c in inspector.get_columns(table.name)})]
    if missing:
        raise SchemaMismatch(
            "this pre-Alembic radflow database lacks baseline columns "
            f"{', '.join(missing)}; add them by hand, then rerun the upgrade")
    command.stamp(alembic_config(connection=conn), BASELINE_REVISION)


@contextlib.contextmanager
def _migration_transaction(engine: Engine) -> Iterator[Connection]:
    """One connection in one transaction, holding the database's migration lock."""
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        lock_engine = _sqlite_immediate_engine(url)
        try:
            with lock_engine.connect() as conn:
                try:
                    transaction = conn.begin()  # BEGIN IMMEDIATE: waits for the write lock
                except sa.exc.OperationalError as exc:
                    if "locked" not in str(exc.orig):
                        raise
                    raise LockHeld(f"another process held the write lock of {url.database} for "
                                   f"{LOCK_TIMEOUT_S:.0f} s") from None
                with transaction:
                    yield conn
        finally:
            lock_engine.dispose()
        return
    with engine.connect() as conn:
        locked = conn.dialect.name == "postgresql"
        if locked:
            _pg_lock(conn)
        try:
            with conn.begin():
                yield conn
        finally:
            if locked:
                conn.execute(sa.select(sa.func.pg_advisory_unlock(_PG_LOCK_KEY)))
                conn.commit()


def _pg_lock(conn: Connection) -> None:
    timeout_s = LOCK_TIMEOUT_S
    deadline = time.monotonic() + timeout_s
    while not conn.execute(sa.select(sa.func.pg_try_advisory_lock(_PG_LOCK_KEY))).scalar_one():
        conn.rollback()
        if time.monotonic() > deadline:
            raise LockHeld(f"another process has been migrating the results database for "
                           f"{timeout_s:.0f} s (advisory lock {_PG_LOCK_KEY})")
        time.sleep(0.2)
    conn.commit()  # the lock is the session's; end the transaction that asked for it


def _sqlite_immediate_engine(url: sa.URL) -> Engine:
    """An engine whose transactions are `BEGIN IMMEDIATE` and include DDL.

    pysqlite's default commits before DDL; the driver's own transaction handling is
    turned off and SQLAlchemy's begin emits BEGIN IMMEDIATE instead (SQLAlchemy's
    documented recipe), which waits up to LOCK_TIMEOUT_S for another writer.
    """
    from sqlalchemy.pool import NullPool

    eng = sa.create_engine(url, poolclass=NullPool, hide_parameters=True)

    @sa.event.listens_for(eng, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        dbapi_conn.execute(f"PRAGMA busy_timeout={int(LOCK_TIMEOUT_S * 1000)}")
        dbapi_conn.execute("PRAGMA journal_mode=WAL")

    @sa.event.listens_for(eng, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return eng
