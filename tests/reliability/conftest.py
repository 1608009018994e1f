"""The reliability suite (docs/reliability.md): faults, load and bad input against the real
services. Its tests use the integration stacks (fresh per module) and are marked
`integration` and `reliability`; tests/conftest.py renders the page from the recorded figures
at the end of every session in which one of them recorded some."""

from __future__ import annotations

import pytest

from tests.integration.conftest import full_stack, stack  # noqa: F401  (the same module stacks)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/reliability/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.reliability)
