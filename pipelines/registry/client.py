"""ModelRegistry: radflow's calls to the MLflow tracking server, by alias, never by stage."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from pipelines.config import get_settings
from pipelines.errors import MlflowUnavailable, RegistryError

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient


QUIET_MLFLOW = {
    "MLFLOW_DISABLE_TELEMETRY": "true",  # no calls home from a hospital network
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK": "true",
    # fail in seconds, not minutes, when the tracking server is down
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
}


def quiet_mlflow() -> None:
    """No telemetry, no progress bars, no URLs on stdout (which the CLI keeps for JSON)."""
    for key, value in QUIET_MLFLOW.items():
        os.environ.setdefault(key, value)


def mlflow_client() -> MlflowClient:
    """A client of the configured tracking server (the URI is set here, at run time)."""
    quiet_mlflow()  # before mlflow is first imported: some settings are read at import
    from mlflow.tracking import MlflowClient

    import mlflow

    uri = get_settings().mlflow_uri
    if uri.startswith("http"):
        _probe(uri)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        client.search_experiments(max_results=1)
    except Exception as exc:
        raise MlflowUnavailable(f"MLflow tracking server at {uri} did not answer: {exc}") from exc
    return client


def _probe(uri: str) -> None:
    import httpx

    try:
        httpx.get(f"{uri.rstrip('/')}/health", timeout=5.0).raise_for_status()
    except httpx.HTTPError as exc:
        raise MlflowUnavailable(f"MLflow tracking server at {uri} did not answer: {exc}") from exc


def version_by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version holding `alias`, or None when no version holds it."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def require_version(client: MlflowClient, name: str, alias: str) -> ModelVersion:
    found = version_by_alias(client, name, alias)
    if found is None:
        raise RegistryError(f"registered model {name!r} has no version with alias {alias!r}")
    return found


def model_uri(name: str, alias: str) -> str:
    return f"models:/{name}@{alias}"
