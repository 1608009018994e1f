"""Shared fixtures: isolated radflow settings for every test, and a PostgreSQL database.

Every test gets its own state dir (RADFLOW_STATE_DIR under tmp_path) and a SQLite results
database in it (unit tests only: radflow itself defaults to PostgreSQL), unless the test
sets RADFLOW_DATABASE_URL itself; the cached settings and engines are forgotten around
each test.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# One math thread per process while testing: `make test` runs two pytest workers on two
# cores beside the services they start, and torch's or numpy's OpenMP pools sized to every
# core spin against each other (a small training test took 9 s alone, 215 s in the suite).
# Set before anything imports torch; the radflow commands the tests start inherit it.
for _pool in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_pool, "1")

from pipelines import config, db  # noqa: E402


def _load_sibling(name: str) -> object:
    """tests/<name>.py as a module, whatever pytest's import mode."""
    module_name = f"radflow_tests_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


postgres = _load_sibling("postgres")
redis_server = _load_sibling("redis_server")


# The longest test modules, longest first (`--durations` of a full run): `make test` runs
# two pytest workers that take whole files in collection order, so these start first and
# the many short files fill in around them, instead of one long file running alone at the end.
LONGEST_FIRST = (
    "integration/test_e2e_dags.py", "integration/test_pipeline.py", "reliability/test_kill_trials.py",
    "reliability/test_outages.py", "integration/test_monitoring_drift.py", "integration/test_scheduler.py",
    "reliability/test_concurrency.py", "reliability/test_disk_full.py", "reliability/test_load.py",
    "integration/test_chest_loop.py",
    "integration/test_promotion.py", "integration/test_hospital_pacs.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = Path(str(item.fspath)).as_posix()
        return next((i for i, name in enumerate(LONGEST_FIRST) if path.endswith(name)), len(LONGEST_FIRST))

    items.sort(key=rank)  # stable: the order within a file, and of the other files, stays


_SESSION_START = __import__("time").time()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """docs/reliability.md rendered again, once (by xdist's controller or a plain run), when
    a reliability check of this session recorded its figures (tests/reliability/figures.py)."""
    if hasattr(session.config, "workerinput"):
        return
    from tests.reliability.figures import FIGURES, write_page

    if any(p.stat().st_mtime >= _SESSION_START for p in FIGURES.glob("*.json")):
        write_page()


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh state dir and SQLite results database per test; settings re-read."""
    state = tmp_path / "radflow-state"
    monkeypatch.setenv("RADFLOW_STATE_DIR", str(state))
    monkeypatch.setenv("RADFLOW_DATABASE_URL", f"sqlite:///{state / 'radflow.db'}")
    config.reset_settings()
    yield state
    config.reset_settings()
    db.engine_for.cache_clear()


def _found_or_started(found: Any, unavailable: type[Exception]) -> Iterator[str]:
    """The URL a found-or-started service context gives, for a session fixture; the test
    fails (never skips) with the reason when there is none."""
    try:
        url = found.__enter__()
    except unavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield url
    finally:
        found.__exit__(None, None, None)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL of an empty PostgreSQL database for the session (never skipped)."""
    yield from _found_or_started(postgres.postgres_database(),  # type: ignore[attr-defined]
                                 postgres.PostgresUnavailable)  # type: ignore[attr-defined]


@pytest.fixture(params=["sqlite", "postgresql"])
def results_database(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The results database of a test run on both dialects: the test's SQLite file, or a
    new database on the session's PostgreSQL, dropped afterwards. Yields the dialect."""
    if request.param == "sqlite":
        yield "sqlite"
        return
    import uuid
    from contextlib import closing

    import sqlalchemy as sa

    server_url: str = request.getfixturevalue("postgres_url")
    name = f"radflow_unit_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with closing(admin.connect()) as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    monkeypatch.setenv("RADFLOW_DATABASE_URL",
                       sa.make_url(server_url).set(database=name).render_as_string(hide_password=False))
    config.reset_settings()
    try:
        yield "postgresql"
    finally:
        db.get_engine().dispose()
        db.engine_for.cache_clear()
        with closing(admin.connect()) as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """redis:// URL of an empty Redis database for the session (never skipped)."""
    yield from _found_or_started(redis_server.redis_database(),  # type: ignore[attr-defined]
                                 redis_server.RedisUnavailable)  # type: ignore[attr-defined]
