"""Schedules that fire by themselves, on the live scheduler (not `airflow dags test`):
api-server, scheduler, dag-processor and triggerer on PostgreSQL, driven only through
Airflow's authenticated REST API, as people drive it.

The module's stack is configured the way hospital IT would configure it; once the first
champion is deployed, Airflow is restarted with times set relative to that moment (UTC):
- the nightly screening's cron is due at TICK (2 minutes later, well after the DAG is
  unpaused) and its go-live is three days earlier: the two nights before TICK are missed
  and must be caught up in order, then TICK must run on its own;
- its deadline is 30 minutes after the tick: the caught-up nights are past theirs;
- clinical hours end at WINDOW_END (TICK + 1.5 min), so a drift-triggered retraining
  started before then waits for it;
- the promotion policy lists one approver login, `ada` ("Dr. Ada Reviewer"); `eve` is in
  the ML team but not listed;
- notifications go to a webhook this module listens on.
The tests run in file order: each reads what the scheduler did since the fixture started.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipelines.orchestration.api import AirflowAPI
from tests.integration.models import register_versions
from tests.integration.stack import (
    WITHOUT_AIRFLOW,
    Stack,
    fresh_database,
    policy_with_approvers,
    running_stack,
)

MODEL = "mammo-screening"
SCREEN, RETRAIN, DEPLOY = "screen_daily_mammograms", "retrain_mammo_model", "deploy_mammo_model"
PASSWORDS = {"ada": "ada-Passw0rd-scheduler", "eve": "eve-Passw0rd-scheduler"}


class Webhook(http.server.BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Live:
    stack: Stack
    t0: dt.datetime
    tick: dt.datetime
    window_end: dt.datetime
    unpaused_at: dt.datetime
    promoted: dict[str, Any]
    notices: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.stack.env['RADFLOW_AIRFLOW_PORT']}"

    def api(self, login: str = "admin") -> AirflowAPI:
        password = (self.stack.secret("airflow", "RADFLOW_AIRFLOW_PASSWORD") if login == "admin"
                    else PASSWORDS[login])
        return AirflowAPI(self.url, login, password)


def minute(t: dt.datetime) -> dt.datetime:
    """The next whole minute at or after t."""
    return (t + dt.timedelta(seconds=59)).replace(second=0, microsecond=0)


def wait_for(what: str, probe: Any, timeout_s: float, poll_s: float = 3) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def parse(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def timed_settings(now: dt.datetime) -> tuple[dict[str, str], dt.datetime, dt.datetime]:
    """(settings, TICK, WINDOW_END) for a stack (re)started at `now`."""
    tick = minute(now + dt.timedelta(minutes=2))
    window_end = minute(tick + dt.timedelta(seconds=90))
    deadline = tick + dt.timedelta(minutes=30)
    return {
        "RADFLOW_SCREENING_SCHEDULE": f"{tick.minute} {tick.hour} * * *",
        "RADFLOW_SCREENING_START_DATE": (tick - dt.timedelta(days=3, minutes=-1)).isoformat(),
        "RADFLOW_SCREENING_DEADLINE": f"{deadline:%H:%M}",
        "RADFLOW_CLINICAL_HOURS": f"{now - dt.timedelta(hours=1):%H:%M}-{window_end:%H:%M}",
    }, tick, window_end


@pytest.fixture(scope="module")
def live(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    Webhook.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    t0 = dt.datetime.now(dt.UTC)
    folder = tmp_path_factory.mktemp("scheduler")
    settings = {
        "RADFLOW_HOSPITAL_TIMEZONE": "UTC",
        "RADFLOW_RETRAIN_SCHEDULE": "0 3 29 2 *",  # never due here: only drift starts it
        "RADFLOW_CLINICAL_DAYS": "mon,tue,wed,thu,fri,sat,sun",
        "RADFLOW_NOTIFY_WEBHOOK_URL": f"http://127.0.0.1:{server.server_address[1]}/radflow",
        "RADFLOW_RETRY_DELAY_MINUTES": "0.05", "RADFLOW_TASK_RETRIES": "1",
        "RADFLOW_REGISTRY_POLICY_FILE": str(policy_with_approvers(
            folder, [{"login": "ada", "name": "Dr. Ada Reviewer"}])),
    }
    try:
        with fresh_database(postgres_url) as db_url, \
                running_stack(tmp_path_factory.mktemp("radflow-state"), db_url,
                              (*WITHOUT_AIRFLOW, "airflow"), settings) as stack:
            import mlflow

            register_versions(stack, MODEL, [(128, 96)], tmp_path_factory.mktemp("onnx"))
            mlflow.MlflowClient().set_registered_model_alias(MODEL, "challenger", "1")
            for login, name in (("ada", "Ada Reviewer"), ("eve", "Eve Outsider")):
                added = stack.radflow("user", "add", login, "--role", "ml-team", "--name", name,
                                      env={**stack.env, "RADFLOW_NEW_USER_PASSWORD": PASSWORDS[login]})
                assert added["airflow"] == "created"
            state = Live(stack, t0, t0, t0, t0, {}, Webhook.received)
            # ada, a listed approver, promotes and deploys the first champion through the DAG
            with state.api("ada") as ada:
                state.promoted = ada.trigger_and_wait(DEPLOY, {"reason": "first champion"}, timeout_s=600)
            # hospital IT sets the night's schedule, deadline and clinical hours, restarts Airflow
            timed, state.tick, state.window_end = timed_settings(dt.datetime.now(dt.UTC))
            stack.env.update(timed)
            stack.radflow("stack", "down", "--only", "airflow")
            stack.radflow("stack", "up", "--only", "airflow", timeout=600)
            with state.api("ada") as ada:
                ada.set_paused(SCREEN, False)
            state.unpaused_at = dt.datetime.now(dt.UTC)
            assert state.unpaused_at < state.tick - dt.timedelta(seconds=20), (
                f"Airflow's restart took until {state.unpaused_at}: too late for the tick at {state.tick}")
            yield state
    finally:
        server.shutdown()
        server.server_close()


def failed_deploy(api: AirflowAPI, reason: str) -> tuple[str, dict[str, str]]:
    """Trigger deploy_mammo_model as the API's login; (run id, task states) of the failed run."""
    run_id = api.trigger(DEPLOY, {"reason": reason})["dag_run_id"]
    with pytest.raises(Exception, match="failed"):
        api.wait(DEPLOY, run_id, timeout_s=300)
    return run_id, {t["task_id"]: t["state"] for t in api.task_instances(DEPLOY, run_id)}


def runs(live: Live, dag_id: str) -> list[dict[str, Any]]:
    with live.api() as admin:
        return admin.runs(dag_id)


def test_a_listed_login_promotes_through_the_deploy_dag_and_is_audited_by_login(live: Live) -> None:
    assert live.promoted["state"] == "success" and live.promoted["triggering_user_name"] == "ada"
    [row] = live.stack.query("SELECT approver, approver_name, approved_via, outcome, version FROM promotions")
    assert row == {"approver": "ada", "approver_name": "Dr. Ada Reviewer", "approved_via": "airflow",
                   "outcome": "promoted", "version": "1"}
    import mlflow

    tags = mlflow.MlflowClient().get_model_version(MODEL, "1").tags
    assert (tags["approved_by"], tags["approved_by_name"], tags["approved_via"]) == (
        "ada", "Dr. Ada Reviewer", "airflow")


def test_a_drift_event_starts_retraining_which_waits_out_clinical_hours(live: Live) -> None:
    with live.api("ada") as ada:  # the ML team may create asset events (as monitoring's task does)
        ada.set_paused(RETRAIN, False)
        assets = ada.request("GET", "/api/v2/assets")["assets"]
        [asset] = [a for a in assets if a["name"] == "mammo_data_drift"]
        ada.request("POST", "/api/v2/assets/events", json={"asset_id": asset["id"],
                                                           "extra": {"reason": "sustained drift"}})
        run = wait_for("an asset-triggered retraining", lambda: next(
            (r for r in ada.runs(RETRAIN) if r["run_type"] == "asset_triggered"), None), 120)
        assert run["triggering_user_name"] is None  # nobody triggered it: the asset did

        def gate_state() -> str | None:
            tis = {t["task_id"]: t for t in ada.task_instances(RETRAIN, run["dag_run_id"])}
            state = tis["wait_for_training_window"]["state"]
            return state if state in ("deferred", "success", "failed") else None

        assert wait_for("the training window gate", gate_state, 120) == "deferred"
    assert dt.datetime.now(dt.UTC) < live.window_end  # deferred while clinical hours last


def test_a_promotion_triggered_by_a_login_outside_the_list_is_refused_and_audited(live: Live) -> None:
    with live.api("eve") as eve:
        run_id, states = failed_deploy(eve, "I think it is better")
    assert states == {"promote_challenger": "failed", "deploy_champion": "upstream_failed"}
    rows = live.stack.query("SELECT approver, approver_name, approved_via, outcome, gates FROM promotions "
                            "ORDER BY id")
    refused = rows[-1]
    assert (refused["approver"], refused["approved_via"], refused["outcome"]) == ("eve", "airflow", "refused")
    assert "'eve' (airflow) is not an approver listed" in json.loads(refused["gates"])["checks"][0]["detail"]
    import mlflow

    assert str(mlflow.MlflowClient().get_model_version_by_alias(MODEL, "champion").version) == "1"
    failed = wait_for("the failure notice", lambda: [n for n in live.notices if n.get("kind") == "task_failed"
                                                     and n["run_id"] == run_id], 60)
    assert failed[0]["task_id"] == "promote_challenger" and "PromotionRefused" in failed[0]["summary"]


def test_missed_nights_are_caught_up_in_order_and_the_due_night_runs_by_itself(live: Live) -> None:
    def three_done() -> list[dict[str, Any]] | None:
        done = [r for r in runs(live, SCREEN) if r["state"] in ("success", "failed")]
        return done if len(done) >= 3 else None

    wait_for("three screening runs", three_done, (live.tick - dt.datetime.now(dt.UTC)).total_seconds() + 240)
    found = runs(live, SCREEN)
    assert [r["run_type"] for r in found] == ["scheduled"] * 3  # nobody triggered any of them
    assert [r["state"] for r in found] == ["success"] * 3
    logical = [parse(r["logical_date"]) for r in found]
    assert logical == [live.tick - dt.timedelta(days=2), live.tick - dt.timedelta(days=1), live.tick]
    started = [parse(r["start_date"]) for r in found]
    ended = [parse(r["end_date"]) for r in found]
    assert started[0] < ended[0] <= started[1] < ended[1] <= started[2]  # one night at a time, in order
    assert started[1] < live.tick <= started[2]  # caught up at once; the due night when due
    nights = {r["study_date"]: r["status"] for r in live.stack.query(
        "SELECT study_date, status FROM screening_runs")}
    assert nights == {(t - dt.timedelta(days=1)).date().isoformat(): "complete" for t in logical}


def test_the_caught_up_nights_raise_deadline_alerts_and_the_night_on_time_does_not(live: Live) -> None:
    found = runs(live, SCREEN)
    late = {r["dag_run_id"] for r in found[:2]}

    def deadline_alerts() -> list[dict[str, Any]] | None:
        sent = [n for n in live.notices if n.get("kind") == "deadline_missed"]
        return sent if len(sent) >= 2 else None

    alerts = wait_for("two deadline alerts", deadline_alerts, 120)
    assert {a["run_id"] for a in alerts} == late
    assert all(a["dag_id"] == SCREEN and "has not finished by" in a["summary"] for a in alerts)
    # the reading room heard of each night (the webhook carries their notices too)
    nights = {n["study_date"] for n in live.notices if "study_date" in n}
    assert len(nights) == 3


def test_the_retraining_started_only_when_clinical_hours_were_over(live: Live) -> None:
    with live.api() as admin:
        [run] = [r for r in admin.runs(RETRAIN) if r["run_type"] == "asset_triggered"]

        def ingest_started() -> dict[str, Any] | None:
            tis = {t["task_id"]: t for t in admin.task_instances(RETRAIN, run["dag_run_id"])}
            return tis if tis["ingest_new_studies"].get("start_date") else None

        tis = wait_for("ingest after the training window", ingest_started,
                       (live.window_end - dt.datetime.now(dt.UTC)).total_seconds() + 180)
    gate = tis["wait_for_training_window"]
    assert gate["state"] == "success"
    assert parse(gate["start_date"]) < live.window_end <= parse(tis["ingest_new_studies"]["start_date"])


def test_an_alias_moved_by_hand_is_refused_by_the_deploy_dag_and_fails_integrity(
        live: Live, tmp_path: Path) -> None:
    import mlflow

    assert list(register_versions(live.stack, MODEL, [(128, 96)], tmp_path, first_seed=2)) == [2]
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(MODEL, "challenger", "2")
    client.set_registered_model_alias(MODEL, "champion", "2")  # no gate, no audit
    with live.api("ada") as ada:
        run_id, states = failed_deploy(ada, "serve what MLflow says")
    assert states == {"promote_challenger": "success", "deploy_champion": "failed"}
    failed = wait_for("the deploy failure notice", lambda: [
        n for n in live.notices if n.get("run_id") == run_id], 60)
    assert "UnapprovedChampion" in failed[0]["summary"]
    admin_key = live.stack.secret("triton", "RADFLOW_TRITON_ADMIN_KEY")
    index = httpx.post(f"http://127.0.0.1:{live.stack.env['RADFLOW_TRITON_HTTP_PORT']}/v2/repository/index",
                       headers={"radflow-admin-key": admin_key}, json={}).json()
    assert sorted(m["version"] for m in index if m["name"] == "mammo_screening"
                  and m.get("state") == "READY") == ["1"]  # nothing loaded
    checked = live.stack.radflow("check-integrity", ok=False)
    assert [(p["triton_model"], p["status"]) for p in checked["problems"]] == [
        (f"registry:{MODEL}@champion", "unapproved")]
