"""A small client of Airflow 3's REST API (`/api/v2`), logged in with a FAB user's password.

Used by `radflow demo` and the tests to drive the live scheduler the way a person does in
the UI: unpause, trigger with a conf, follow a run until it ends. The token comes from
`POST /auth/token` and is renewed once when the API answers 401.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any
from urllib.parse import quote

import httpx

from pipelines.errors import PermanentError, ServiceUnavailable

log = logging.getLogger(__name__)
FINISHED = ("success", "failed")


class AirflowAPI:
    """`AirflowAPI(url, login, password)`; every call raises ServiceUnavailable when the
    api-server does not answer and PermanentError when it refuses (the message says why)."""

    def __init__(self, base_url: str, username: str, password: str, timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._password = password
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s)
        self._token = ""

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AirflowAPI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def login(self) -> str:
        """A JWT for the user (POST /auth/token)."""
        response = self._send("POST", "/auth/token", json={"username": self.username,
                                                           "password": self._password})
        if response.status_code in (401, 403):
            raise PermanentError(f"Airflow at {self.base_url} refused the login {self.username!r}")
        self._check(response, "POST /auth/token")
        self._token = str(response.json()["access_token"])
        return self._token

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(f"Airflow at {self.base_url} did not answer {method} {path}: "
                                     f"{exc}") from exc

    def _check(self, response: httpx.Response, what: str) -> None:
        if response.status_code >= 400:
            raise PermanentError(f"Airflow answered {response.status_code} to {what}: "
                                 f"{response.text[:500]}")

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One authenticated call; the parsed JSON answer (None when empty)."""
        if not self._token:
            self.login()
        for attempt in (1, 2):
            response = self._send(method, path, headers={"Authorization": f"Bearer {self._token}"},
                                  **kwargs)
            if response.status_code == 401 and attempt == 1:
                self.login()
                continue
            self._check(response, f"{method} {path}")
            return response.json() if response.content else None
        raise AssertionError("unreachable")  # pragma: no cover

    def dag(self, dag_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/api/v2/dags/{quote(dag_id)}"))

    def set_paused(self, dag_id: str, paused: bool) -> dict[str, Any]:
        return dict(self.request("PATCH", f"/api/v2/dags/{quote(dag_id)}", json={"is_paused": paused}))

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None,
                logical_date: dt.datetime | None = None) -> dict[str, Any]:
        """Start a run (logical date: now unless given); the run as Airflow describes it."""
        when = (logical_date or dt.datetime.now(dt.UTC)).isoformat()
        return dict(self.request("POST", f"/api/v2/dags/{quote(dag_id)}/dagRuns",
                                 json={"logical_date": when, "conf": conf or {}}))

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}"))

    def runs(self, dag_id: str, **params: Any) -> list[dict[str, Any]]:
        """The DAG's runs, oldest logical date first."""
        found = self.request("GET", f"/api/v2/dags/{quote(dag_id)}/dagRuns",
                             params={"order_by": "logical_date", "limit": 100, **params})
        return list(found["dag_runs"])

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        found = self.request("GET", f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}/taskInstances")
        return list(found["task_instances"])

    def wait(self, dag_id: str, run_id: str, timeout_s: float = 3600, poll_s: float = 5) -> dict[str, Any]:
        """Follow a run until it succeeds or fails, logging its tasks' progress every ~30 s.

        Raises:
            PermanentError: the run failed (its failed tasks named) or did not end in time.
        """
        started = last = time.monotonic()
        while True:
            run = self.run(dag_id, run_id)
            if run["state"] in FINISHED:
                break
            if time.monotonic() - started > timeout_s:
                raise PermanentError(f"{dag_id} run {run_id} still {run['state']} after {timeout_s:.0f} s")
            if time.monotonic() - last >= 30:
                last = time.monotonic()
                log.info("airflow: %s %s", dag_id, self.progress(dag_id, run_id, time.monotonic() - started))
            time.sleep(poll_s)
        seconds = time.monotonic() - started
        if run["state"] != "success":
            failed = [t["task_id"] for t in self.task_instances(dag_id, run_id)
                      if t.get("state") in ("failed", "upstream_failed")]
            raise PermanentError(f"{dag_id} run {run_id} failed (tasks: {', '.join(failed) or '?'}); "
                                 f"its logs are in the Airflow UI: {self.run_url(dag_id, run_id)}")
        log.info("airflow: %s %s succeeded in %.0f s", dag_id, run_id, seconds)
        return {**run, "seconds": round(seconds, 1), "url": self.run_url(dag_id, run_id)}

    def progress(self, dag_id: str, run_id: str, elapsed_s: float) -> str:
        tasks = self.task_instances(dag_id, run_id)
        done = sum(1 for t in tasks if t.get("state") in ("success", "skipped"))
        active = [t["task_id"] for t in tasks if t.get("state") in ("running", "deferred", "queued")]
        return f"{done}/{len(tasks)} tasks done, now {', '.join(active) or '-'} ({elapsed_s:.0f} s)"

    def run_url(self, dag_id: str, run_id: str) -> str:
        return f"{self.base_url}/dags/{quote(dag_id)}/runs/{quote(run_id)}"

    def trigger_and_wait(self, dag_id: str, conf: dict[str, Any] | None = None,
                         timeout_s: float = 3600) -> dict[str, Any]:
        """Unpause the DAG (its schedule stays on), start a run and follow it to the end."""
        run = self.trigger(dag_id, conf)
        self.set_paused(dag_id, False)
        log.info("airflow: %s run %s triggered by %s", dag_id, run["dag_run_id"], self.username)
        return self.wait(dag_id, run["dag_run_id"], timeout_s)


def for_stack() -> AirflowAPI:
    """A client of the configured Airflow, logged in as its admin (RADFLOW_AIRFLOW_USERNAME)."""
    from pipelines.config import get_settings

    s = get_settings()
    return AirflowAPI(s.airflow_base_url, s.airflow_username, s.airflow_secret())
