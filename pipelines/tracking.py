"""radflow's MLflow client (credentials, by alias, never by stage) and the lineage tags every run carries."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from typing import TYPE_CHECKING

from pipelines.config import PROJECT_DIR, get_settings
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


CREDENTIALS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


def use_credentials(username: str, password: str) -> None:
    """Every MLflow call of this process (client, fluent API, artifacts) logs in as `username`."""
    os.environ[CREDENTIALS[0]], os.environ[CREDENTIALS[1]] = username, password


@contextlib.contextmanager
def credentials(username: str, password: str) -> Iterator[None]:
    """Log in as `username` while the block runs; the previous login afterwards."""
    before = {key: os.environ.get(key) for key in CREDENTIALS}
    use_credentials(username, password)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def mlflow_client() -> MlflowClient:
    """A client of the configured tracking server (the URI is set here, at run time), logged
    in as RADFLOW_MLFLOW_USERNAME.

    Raises:
        MlflowUnavailable: the server did not answer.
        RegistryError: it refused the login (wrong or missing password).
    """
    quiet_mlflow()  # before mlflow is first imported: some settings are read at import
    from mlflow.tracking import MlflowClient

    import mlflow

    s = get_settings()
    uri = s.mlflow_uri
    if uri.startswith("http"):
        _probe(uri)
        use_credentials(s.mlflow_username, s.mlflow_secret())
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        client.search_experiments(max_results=1)
    except Exception as exc:
        if "401" in str(exc) or "Unauthorized" in str(exc) or "not authenticated" in str(exc):
            raise RegistryError(f"MLflow at {uri} refused the login {s.mlflow_username!r}: set "
                                "RADFLOW_MLFLOW_USERNAME and RADFLOW_MLFLOW_PASSWORD") from exc
        raise MlflowUnavailable(f"MLflow tracking server at {uri} did not answer: {exc}") from exc
    return client


def logged_in_user() -> str:
    """The MLflow login every call of this process is made as (after mlflow_client())."""
    return os.environ.get(CREDENTIALS[0], "")


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


# Lineage: tags every run carries (git sha, data contract versions; the data hash is the dataset's).
def git_sha() -> str:
    """The commit of the code that ran ("unknown" outside a git checkout)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_DIR, capture_output=True,
                             text=True, timeout=10, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def contract_versions() -> str:
    """The data contract files in force, e.g. "mammo_manifest.v1"."""
    names = sorted(p.name.removesuffix(".json") for p in (PROJECT_DIR / "data_contracts").glob("*.v*.json"))
    return ",".join(names)
