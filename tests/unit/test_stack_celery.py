"""Airflow's executor choice, its Celery workers and the lake store, without starting any
service (the two-host run on real Redis and PostgreSQL: tests/integration/test_e2e_dags.py)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.config import QUEUES, RadflowSettings, get_settings
from pipelines.errors import StackError
from pipelines.stack import airflow, manage

pytestmark = pytest.mark.timeout(60)


def settings(**updates: object) -> RadflowSettings:
    return get_settings().model_copy(update=updates)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_local_executor_is_the_default_and_runs_no_worker() -> None:
    s = get_settings()
    assert airflow.executor(s) == ("local", 0)
    assert airflow.environment(s)["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert "AIRFLOW__CELERY__BROKER_URL" not in airflow.environment(s)
    assert manage._worker_units(s) == []


def test_the_celery_executor_takes_the_broker_and_keeps_results_in_the_metadata_database(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RADFLOW_AIRFLOW_EXECUTOR", "celery")
    monkeypatch.setenv("RADFLOW_CELERY_BROKER_URL", "redis://:brokerpw@redis.hospital:6379/3")
    monkeypatch.setenv("RADFLOW_AIRFLOW_DATABASE_URL", "postgresql+psycopg2://af:pw@db.hospital:5432/airflow")
    s = RadflowSettings()
    env = airflow.environment(s)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://:brokerpw@redis.hospital:6379/3"
    # psycopg2 named: SQLAlchemy 2.1 would take psycopg 3 for a bare postgresql://
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+postgresql+psycopg2://af:pw@db.hospital:5432/airflow"
    assert "AIRFLOW__CELERY__POOL" not in env  # prefork: Airflow's supervisor needs a main thread


def test_the_executor_chosen_by_stack_up_is_recorded_for_later_commands() -> None:
    s = get_settings()
    airflow.record_executor(s, "celery", 3)
    assert airflow.executor(get_settings()) == ("celery", 3)
    assert [u for u in manage._worker_units(get_settings())] == [
        "airflow-worker-1", "airflow-worker-2", "airflow-worker-3"]
    # the setting wins over the record
    assert airflow.executor(settings(airflow_executor="local")) == ("local", 0)
    assert airflow.executor(settings(celery_workers=5)) == ("celery", 5)


def test_a_recorded_executor_nobody_knows_is_refused() -> None:
    path = airflow.home(get_settings()) / "executor"
    path.parent.mkdir(parents=True)
    path.write_text("kubernetes 1\n")
    with pytest.raises(StackError, match="names executor 'kubernetes'"):
        airflow.executor(get_settings())


def test_workers_still_running_from_an_earlier_up_are_stopped_by_down_too() -> None:
    s = settings(airflow_executor="celery", celery_workers=1)
    run = s.state / "run"
    run.mkdir(parents=True)
    (run / "airflow-worker-4.pid").write_text("999999\n")
    assert manage._worker_units(s) == ["airflow-worker-1", "airflow-worker-4"]


def test_a_worker_serves_the_configured_queues_under_its_own_name() -> None:
    s = settings(airflow_executor="celery", worker_queues="default, pacs", worker_concurrency=3)
    argv, env = airflow.worker_command(s, "worker-1")
    assert argv[1:3] == ["celery", "worker"]
    assert argv[argv.index("--queues") + 1] == "default,pacs"
    assert argv[argv.index("--concurrency") + 1] == "3"
    assert argv[argv.index("--celery-hostname") + 1] == "worker-1@%h"
    assert "--skip-serve-logs" in argv  # workers of one machine share its log folder
    assert "--skip-serve-logs" not in airflow.worker_command(s, "w", serve_logs=True)[0]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


@pytest.mark.parametrize("queues", ["default,gpus", "", " , "])
def test_an_unknown_queue_is_refused_naming_it_and_the_known_ones(queues: str) -> None:
    with pytest.raises(StackError, match="RADFLOW_WORKER_QUEUES") as caught:
        airflow.queues(settings(worker_queues=queues))
    assert all(q in str(caught.value) for q in QUEUES)


def test_a_broker_that_does_not_answer_is_a_clear_error_without_its_password(
        monkeypatch: pytest.MonkeyPatch) -> None:
    port = closed_port()
    monkeypatch.setenv("RADFLOW_CELERY_BROKER_URL", f"redis://:sekrit@127.0.0.1:{port}/0")
    s = RadflowSettings()
    with pytest.raises(StackError, match="RADFLOW_CELERY_BROKER_URL") as caught:
        airflow.check_broker(s)
    assert f"127.0.0.1:{port}" in str(caught.value) and "sekrit" not in str(caught.value)


def test_workers_without_the_celery_executor_are_refused() -> None:
    with pytest.raises(StackError, match="--executor celery"):
        manage.up(only=["airflow"], executor="local", workers=2)


def test_the_executor_cannot_change_under_a_running_scheduler(tmp_path: Path) -> None:
    s = get_settings()
    airflow.record_executor(s, "local", 0)
    pid_file = s.state / "run" / "airflow-scheduler.pid"
    pid_file.parent.mkdir(parents=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        pid_file.write_text(f"{sleeper.pid}\n")
        with pytest.raises(StackError, match="runs here with the local executor"):
            manage._check_executor(settings(airflow_executor="celery"), "celery")
    finally:
        sleeper.kill()
        sleeper.wait()


def test_the_cli_refuses_zero_workers_before_any_work() -> None:
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "stack", "up", "--executor", "celery",
                           "--workers", "0"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "argument --workers: 0 is out of range (expected at least 1)" in proc.stderr


def test_the_lake_store_holds_what_tasks_hand_on_and_the_state_dir_the_rest(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from pipelines import features, layout

    monkeypatch.setenv("RADFLOW_LAKE_STORE", str(tmp_path / "shared"))
    from pipelines.config import reset_settings

    reset_settings()
    s = get_settings()
    shared = (tmp_path / "shared").resolve()
    assert s.store == shared
    for path in (s.lake_dir, s.worklists_dir, s.reports_dir, layout.datasets_root(), layout.default_remote(),
                 features.night_path("mammo", "2026-01-02", "3")):
        assert path.is_relative_to(shared), path
    assert not s.logs_dir.is_relative_to(shared) and not s.secret_file("orthanc").is_relative_to(shared)


@pytest.mark.parametrize("url", ["s3://radflow-lake/prod", "gs://bucket"])
def test_a_bucket_url_as_lake_store_is_refused_saying_to_mount_it(url: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="mount the bucket"):
        RadflowSettings(lake_store=url)


def _stage_starting_a_pool() -> dict[str, int]:
    import concurrent.futures
    import multiprocessing

    answers = {}
    for method in ("fork", "spawn"):  # ingest spawns its workers
        context = multiprocessing.get_context(method)
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
            answers[method] = pool.submit(abs, -42).result()
    return answers


def _task_in_a_celery_pool_process(out: object) -> None:
    from pipelines.orchestration.tasks import call_stage

    try:
        out.put(call_stage(_stage_starting_a_pool))  # type: ignore[attr-defined]
    except Exception as exc:  # reported to the test, which names it
        out.put({"error": f"{type(exc).__name__}: {exc}"})  # type: ignore[attr-defined]


def test_a_task_forked_from_a_celery_pool_process_may_start_process_pools() -> None:
    """Celery's prefork pool processes are daemonic billiard processes, and Airflow forks
    each task from one: ingest's and decoding's process pools must still start."""
    import billiard

    out = billiard.Queue()
    proc = billiard.Process(target=_task_in_a_celery_pool_process, args=(out,), daemon=True)
    proc.start()
    result = out.get(timeout=60)
    proc.join(timeout=30)
    assert result == {"fork": 42, "spawn": 42}


def test_a_restarted_worker_is_not_ready_on_its_last_runs_ready_line(tmp_path: Path) -> None:
    """Worker logs are appended to: only a "ready." stamped after this start counts."""
    import time

    log = tmp_path / "airflow-worker-1.log"
    log.write_text("2026-12-06T16:52:10.064546Z [info     ] worker-1@vm ready.       [celery.apps.worker]\n"
                   "2026-12-06T17:10:00.000000Z [info     ] Task execute_workload succeeded\n")
    started = time.time()
    assert not airflow.worker_ready(log, since=started)
    assert airflow.worker_ready(log, since=dt_epoch("2026-12-06T16:52:09Z"))
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(started + 2))
    with log.open("a") as out:
        out.write(f"{now} [info     ] worker-1@vm ready.       [celery.apps.worker]\n")
    assert airflow.worker_ready(log, since=started)
    assert not airflow.worker_ready(tmp_path / "missing.log", since=started)


def dt_epoch(iso: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
