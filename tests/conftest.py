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


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL of an empty PostgreSQL database for the session (never skipped)."""
    try:
        database = postgres.postgres_database()  # type: ignore[attr-defined]
        url = database.__enter__()
    except postgres.PostgresUnavailable as exc:  # type: ignore[attr-defined]
        pytest.fail(str(exc), pytrace=False)
    try:
        yield url
    finally:
        database.__exit__(None, None, None)
