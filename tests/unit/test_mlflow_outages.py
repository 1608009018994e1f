"""An MLflow server that cannot be reached is an outage (MlflowUnavailable, a TransientError the
orchestrator retries), never an answer. Before (issue 18, item 4), `version_by_alias` read a
refused connection as "no version holds the alias" (a promotion then took the champion for
absent, training its registered base for missing), a version lookup as "no such version" (a
PermanentError: the promotion task was not retried), and a stage met by an outage failed with
MLflow's generic MlflowException, naming neither the service nor a retry. Real MLflow clients:
one pointed at a closed loopback port, one on a SQLite registry."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipelines import config
from pipelines.errors import MlflowUnavailable, PermanentError, RegistryError
from pipelines.modelfiles.integrity import resolve
from pipelines.registry.promote import get_version
from pipelines.tracking import reaching_mlflow, unreachable, version_by_alias


@pytest.fixture
def down(monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    """A client of an MLflow server that is not running (a closed loopback port), retrying once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("RADFLOW_MLFLOW_TRACKING_URI", url)
    config.reset_settings()
    return MlflowClient(url, registry_uri=url)


@pytest.fixture
def registry(tmp_path: Path) -> MlflowClient:
    """A reachable registry (SQLite) holding model `m` without versions."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri, registry_uri=uri)
    client.create_registered_model("m")
    return client


def test_an_unreachable_server_is_an_outage_not_a_missing_alias(down: MlflowClient) -> None:
    answer = r"MLflow tracking server at http://127\.0\.0\.1:\d+ did not answer"
    with pytest.raises(MlflowUnavailable, match=answer):
        version_by_alias(down, "m", "champion")


def test_a_missing_alias_is_still_no_version(registry: MlflowClient) -> None:
    assert version_by_alias(registry, "m", "champion") is None


def test_a_version_lookup_that_cannot_reach_mlflow_is_retried_not_refused(down: MlflowClient,
                                                                         registry: MlflowClient) -> None:
    with pytest.raises(MlflowUnavailable):
        get_version(down, "m", "1")
    with pytest.raises(MlflowUnavailable):
        resolve(down, "models:/m/1")
    # an answer stays an answer
    with pytest.raises(RegistryError, match="has no version '1'"):
        get_version(registry, "m", "1")
    with pytest.raises(PermanentError, match="names no registered version"):
        resolve(registry, "models:/m/1")


def test_a_stage_met_by_an_outage_names_mlflow_and_the_step(down: MlflowClient) -> None:
    @reaching_mlflow("the alias move")
    def stage() -> None:
        down.set_registered_model_alias("m", "champion", "1")

    with pytest.raises(MlflowUnavailable, match=r"did not answer \(the alias move\)") as raised:
        stage()
    assert unreachable(raised.value.__cause__)  # MLflow's own exception, kept as the cause


def test_an_answer_is_not_taken_for_an_outage(registry: MlflowClient) -> None:
    @reaching_mlflow("the alias move")
    def stage() -> None:
        registry.set_registered_model_alias("m", "champion", "7")  # no version 7

    with pytest.raises(MlflowException) as raised:
        stage()
    assert not unreachable(raised.value)
