"""Integration tests run against real services started here: Orthanc, MLflow, Triton,
PostgreSQL (a fresh database per module) and, where a module needs it, Airflow."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.stack import WITHOUT_AIRFLOW, Stack, fresh_database, running_stack


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


def _module_stack(request: pytest.FixtureRequest, postgres_url: str,
                  tmp_path_factory: pytest.TempPathFactory, services: tuple[str, ...]) -> Iterator[Stack]:
    """A stack for the requesting module, with the settings its `stack_settings(folder)`
    function asks for, if it has one."""
    make = getattr(request.module, "stack_settings", None)
    env = dict(make(tmp_path_factory.mktemp("settings"))) if make else {}
    state = tmp_path_factory.mktemp("radflow-state")
    with fresh_database(postgres_url) as db_url, running_stack(state, db_url, services, env) as running:
        yield running


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, postgres_url: str,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Orthanc, MLflow and Triton (no Airflow) for one module."""
    yield from _module_stack(request, postgres_url, tmp_path_factory, WITHOUT_AIRFLOW)


@pytest.fixture(scope="module")
def full_stack(request: pytest.FixtureRequest, postgres_url: str,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Every service, Airflow's four processes included, for one module."""
    yield from _module_stack(request, postgres_url, tmp_path_factory, (*WITHOUT_AIRFLOW, "airflow"))
