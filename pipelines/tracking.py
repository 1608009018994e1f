"""radflow's MLflow client (credentials, by alias, never by stage) and the lineage tags every run carries."""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from pipelines.config import PROJECT_DIR, get_settings
from pipelines.errors import MlflowUnavailable, RegistryError

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

P = ParamSpec("P")
R = TypeVar("R")

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


def unreachable(exc: BaseException) -> bool:
    """Whether an MLflow client error means the server was not reached: the connection
    refused or dropped, a timeout, or errors still after the client's retries. MLflow raises
    its generic MlflowException for these as for an answer ("does not exist"), the transport
    error only as its cause or context."""
    import requests

    transport = (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                 requests.exceptions.RetryError, requests.exceptions.ChunkedEncodingError)
    seen: BaseException | None = exc
    for _ in range(8):  # a short chain; bounded all the same
        if seen is None:
            return False
        if isinstance(seen, transport):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def unavailable(exc: BaseException, what: str) -> MlflowUnavailable | None:
    """MlflowUnavailable naming the server and what could not be done, when `exc` means the
    server was not reached (`unreachable`); else None."""
    if not unreachable(exc):
        return None
    return MlflowUnavailable(f"MLflow tracking server at {get_settings().mlflow_uri} did not answer "
                             f"({what}): {str(exc)[:300]}")


def reaching_mlflow(what: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A stage function whose MLflow calls, when the server cannot be reached, raise
    MlflowUnavailable (a TransientError: the orchestrator retries) naming `what`, instead of
    the generic MlflowException, which neither names the service nor says a retry may help."""
    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            from mlflow.exceptions import MlflowException

            try:
                return fn(*args, **kwargs)
            except MlflowException as exc:
                if (outage := unavailable(exc, what)) is not None:
                    raise outage from exc
                raise
        return wrapper
    return decorate


def version_by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version holding `alias`, or None when no version holds it.

    Raises:
        MlflowUnavailable: the server was not reached (it never means "no version").
    """
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if (outage := unavailable(exc, f"the version of {name}@{alias}")) is not None:
            raise outage from exc
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
