"""The nightly loop end to end on two worker hosts: `radflow stack up` with the
CeleryExecutor (the machine's Redis as broker, PostgreSQL for Airflow's metadata and the
results) and no worker of its own; two Celery workers, each on a host of its own (a
network namespace with its own hostname and working directory, reaching the services over
a veth pair), sharing nothing but the services and the lake store (RADFLOW_LAKE_STORE);
then `radflow demo` unpauses and triggers the four DAGs through Airflow's authenticated
REST API and follows each run on the live scheduler, against a real Orthanc, MLflow,
Triton and PostgreSQL, on about 40 synthetic exams. Then the deploy, screening and
monitoring runs are cleared and run again by one worker alone, started on the main host by
`radflow stack up --workers 1`: the same results, nothing added (docs/reliability.md, check
1); and the screening run once more, its scheduler, dag-processor and worker killed mid-run
(check 3)."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from pipelines.config import read_secret_file
from pipelines.orchestration.api import AirflowAPI
from tests.integration.hosts import Forwarder, Host, celery_worker, network_host, stop
from tests.integration.stack import RADFLOW, fresh_database, leaked, scanned_files, stack_env
from tests.reliability.figures import record

WORKERS = {"worker-a": "default,pacs,gpu", "worker-b": "default,pacs"}  # b has no GPU
SCREEN = "screen_daily_mammograms"
# A task whose scheduler and worker died is adopted by the restarted scheduler at its next
# orphan check, failed for its missing heartbeat, then retried. All three are shortened here
# (Airflow's defaults: 300 s and 300 s; radflow's first retry after 5 minutes, so about 15
# minutes in all), and the run must end within KILL_BOUND_S of the kill.
HEARTBEAT_TIMEOUT_S, ORPHAN_CHECK_S, RETRY_DELAY_MINUTES, KILL_BOUND_S = 30, 20, 0.25, 420


def cluster_env(state: Path, db_url: str, redis_url: str, store: Path) -> dict[str, str]:
    """The main host's settings: Celery, no local worker, the lake store outside its state."""
    return {**stack_env(state, db_url), "RADFLOW_AIRFLOW_EXECUTOR": "celery",
            "RADFLOW_CELERY_WORKERS": "0", "RADFLOW_CELERY_BROKER_URL": redis_url,
            "RADFLOW_LAKE_STORE": str(store), "RADFLOW_SCREENING_BATCH_EXAMS": "3",
            "RADFLOW_TRAIN_EPOCHS": "2",  # the model's quality is not what this test checks
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_S),
            "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": str(ORPHAN_CHECK_S),
            "RADFLOW_RETRY_DELAY_MINUTES": str(RETRY_DELAY_MINUTES)}


def service_ports(env: dict[str, str], db_url: str, redis_url: str) -> list[int]:
    keys = ("ORTHANC_HTTP", "ORTHANC_DICOM", "MLFLOW", "TRITON_HTTP", "TRITON_GRPC", "AIRFLOW")
    redis_port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    return [int(env[f"RADFLOW_{k}_PORT"]) for k in keys] + [sa.engine.make_url(db_url).port or 5432,
                                                          redis_port]


def worker_env(env: dict[str, str], state: Path, db_url: str, redis_url: str, host: Host,
               relay: Forwarder, workdir: Path) -> dict[str, str]:
    """What hospital IT gives a worker host: the services' addresses (the main host as this
    host sees it), the secrets, and its own working directory."""
    at, secrets = host.gateway, state / "secrets"

    def port(setting: str) -> int:
        return relay.port(env[f"RADFLOW_{setting}_PORT"])

    airflow = {k: v for k, v in _secrets(secrets / "airflow.env").items() if k.startswith("AIRFLOW__")}
    database = sa.engine.make_url(db_url)
    broker = redis_url.split("//", 1)[1].split("/", 1)
    return {
        **env, **airflow,
        "RADFLOW_STATE_DIR": str(workdir),
        "RADFLOW_ORTHANC_URL": f"http://{at}:{port('ORTHANC_HTTP')}",
        "RADFLOW_ORTHANC_DICOM_HOST": at, "RADFLOW_ORTHANC_DICOM_PORT": str(port("ORTHANC_DICOM")),
        "RADFLOW_ORTHANC_PASSWORD": read_secret_file(secrets / "orthanc.env", "RADFLOW_ORTHANC_PASSWORD"),
        "RADFLOW_MLFLOW_TRACKING_URI": f"http://{at}:{port('MLFLOW')}",
        "RADFLOW_MLFLOW_PASSWORD": read_secret_file(secrets / "mlflow.env", "RADFLOW_MLFLOW_PASSWORD"),
        "RADFLOW_TRITON_URL": f"{at}:{port('TRITON_HTTP')}",
        "RADFLOW_TRITON_ADMIN_KEY": read_secret_file(secrets / "triton.env", "RADFLOW_TRITON_ADMIN_KEY"),
        "RADFLOW_DATABASE_URL": database.set(host=at, port=relay.port(database.port or 5432))
        .render_as_string(hide_password=False),
        "RADFLOW_AIRFLOW_URL": f"http://{at}:{port('AIRFLOW')}",
        "RADFLOW_CELERY_BROKER_URL": f"redis://{at}:{relay.port(broker[0].rsplit(':', 1)[1])}/{broker[1]}",
        "RADFLOW_SCREENING_START_DATE": (state / "airflow" / "go-live").read_text().strip(),
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "socket.gethostname",
    }


def _secrets(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def _wait_ready(logs: list[Path], timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while not all(p.exists() and " ready." in p.read_text(errors="replace") for p in logs):
        assert time.monotonic() < deadline, "workers not ready: " + " | ".join(
            p.read_text(errors="replace")[-1500:] for p in logs if p.exists())
        time.sleep(2)


@pytest.mark.timeout(2400)  # the demo, three cleared runs and a killed one
def test_demo_runs_the_four_dags_end_to_end_on_two_worker_hosts(
        postgres_url: str, redis_url: str, tmp_path: Path) -> None:
    state, store = tmp_path / "state", tmp_path / "store"
    with fresh_database(postgres_url) as db_url, contextlib.ExitStack() as cleanup:
        env = cluster_env(state, db_url, redis_url, store)
        cleanup.callback(subprocess.run, [RADFLOW, "stack", "down"], env=env, capture_output=True,
                         timeout=300)
        up = subprocess.run([RADFLOW, "stack", "up", "--json"], env=env, capture_output=True, text=True,
                            timeout=900)
        assert up.returncode == 0, up.stderr[-3000:]
        assert json.loads(up.stdout.splitlines()[-1])["services"]["airflow"]["executor"] == "celery"
        workers = {}
        for name, queues in WORKERS.items():
            host = cleanup.enter_context(network_host(name))
            relay = Forwarder(host.gateway, service_ports(env, db_url, redis_url))
            cleanup.callback(relay.close)
            settings = worker_env(env, state, db_url, redis_url, host, relay, tmp_path / name)
            workers[name] = cleanup.enter_context(
                celery_worker(host, settings, tmp_path / f"{name}.log", queues))
        _wait_ready([tmp_path / f"{name}.log" for name in WORKERS])

        proc = subprocess.run([RADFLOW, "demo", "--exams", "40", "--json"], env=env,
                              capture_output=True, text=True, timeout=2400)
        assert proc.returncode == 0, proc.stderr[-4000:] + "".join(
            (tmp_path / f"{n}.log").read_text(errors="replace")[-3000:] for n in WORKERS)
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        phi = _identifiers_in_orthanc(env, state)
        ui = _airflow_ui_after_login(env, state, tmp_path / "airflow-dags.png")
        api = AirflowAPI(f"http://127.0.0.1:{env['RADFLOW_AIRFLOW_PORT']}", "admin",
                         read_secret_file(state / "secrets" / "airflow.env", "RADFLOW_AIRFLOW_PASSWORD"))
        cleanup.callback(api.close)
        hosts = {dag_run["dag_id"]: _hosts(api, dag_run["dag_id"], dag_run["dag_run_id"])
                 for dag_run in summary["dag_runs"]}
        night = _night(db_url, summary["screened_date"])

        # one worker alone: both worker hosts stop, this machine starts a worker of its own
        # (`stack up --workers 1`) and the night is screened again from scratch
        for worker in workers.values():
            stop(worker)
        local = subprocess.run([RADFLOW, "stack", "up", "--only", "airflow", "--workers", "1", "--json"],
                               env=env, capture_output=True, text=True, timeout=600)
        assert local.returncode == 0, local.stderr[-3000:]
        started = json.loads(local.stdout.splitlines()[-1])["services"]["airflow"]
        assert started["executor"] == "celery" and started["workers"] == {"worker-1": True}
        # The runs after the training cleared and run again, on this one worker, add nothing.
        # (Not the retraining: the night's exams arrived after it, so its ingest would find new
        # studies, as it should. Its rerun is test_pipeline.py's, with nothing new in between.)
        before, started = _footprint(env, state, db_url), time.monotonic()
        screen_run = next(r["dag_run_id"] for r in summary["dag_runs"] if r["dag_id"] == SCREEN)
        reruns = {}
        for dag_run in summary["dag_runs"][1:]:  # in the demo's order: deploy, screen, monitor
            api.request("POST", f"/api/v2/dags/{dag_run['dag_id']}/clearTaskInstances",
                        json={"dag_run_id": dag_run["dag_run_id"], "dry_run": False, "only_failed": False,
                              "reset_dag_runs": True})
            reruns[dag_run["dag_id"]] = api.wait(dag_run["dag_id"], dag_run["dag_run_id"], timeout_s=900)
        after = _footprint(env, state, db_url)
        rerun = reruns[SCREEN]
        alone = {h for hs in _hosts(api, SCREEN, screen_run).values() for h in hs}
        killed = _kill_airflow_mid_run(api, env, state, screen_run)

        # every task ran on a worker host, tasks on both, training on a's (the gpu queue's)
        ran_on = {h for by_task in hosts.values() for hs in by_task.values() for h in hs}
        assert ran_on == {"worker-a", "worker-b"}, hosts
        assert hosts["retrain_mammo_model"]["train_challenger"] == {"worker-a"}
        # the same night on one worker: the same exams, scores, flags and suspicion; nothing added
        assert rerun["state"] == "success" and len(alone) == 1 and not alone & ran_on, alone
        assert _night(db_url, summary["screened_date"]) == night and len(night) == summary["screened_exams"]
        assert {dag_id: r["state"] for dag_id, r in reruns.items()} == dict.fromkeys(reruns, "success")
        added = _added(before, after)
        record(1, "clear_and_rerun_deploy_screen_monitor", {
            "dag_runs_cleared": len(reruns),
            "reruns_succeeded": sum(r["state"] == "success" for r in reruns.values()),
            "new_result_rows": added["result_rows"], "new_orthanc_instances": added["orthanc_instances"],
            "new_model_versions": added["model_versions"], "new_deliveries": added["deliveries"],
            "changed_deployments": added["deployments"]}, seconds=time.monotonic() - started,
            note="the demo's deploy, screening and monitoring runs cleared through Airflow's REST API "
                 "and run again on one Celery worker; rows counted in every results table")
        assert added == dict.fromkeys(added, 0), (added, before["tables"], after["tables"])
        # Airflow's scheduler, dag-processor and worker killed (-9) while the night scored: the
        # run ends after `stack up` restarted them, with the same results and nothing added
        assert killed["state"] == "success", killed
        assert _night(db_url, summary["screened_date"]) == night
        again = _added(after, _footprint(env, state, db_url))
        record(3, "airflow_killed_mid_run", {
            "processes_killed": "scheduler, dag-processor, Celery worker (kill -9, whole process groups)",
            "run_state": killed["state"], "kill_to_success_s": killed["kill_to_success_s"],
            "bound_s": KILL_BOUND_S, "new_result_rows": again["result_rows"],
            "new_orthanc_instances": again["orthanc_instances"], "new_deliveries": again["deliveries"]},
            seconds=killed["seconds"],
            note=f"the screening run cleared and, once a score_batch task ran, its scheduler, dag-processor "
                 f"and worker killed; `radflow stack up --only airflow` restarted them; orphan check every "
                 f"{ORPHAN_CHECK_S} s, heartbeat timeout {HEARTBEAT_TIMEOUT_S} s, first retry after "
                 f"{RETRY_DELAY_MINUTES * 60:.0f} s (Airflow's and radflow's defaults: 300 s, 300 s, 300 s)")
        assert killed["kill_to_success_s"] <= KILL_BOUND_S
        assert again == dict.fromkeys(again, 0), again

        assert [r["dag_id"] for r in summary["dag_runs"]] == [
            "retrain_mammo_model", "deploy_mammo_model", "screen_daily_mammograms", "monitor_mammo_model"]
        for dag_run in summary["dag_runs"]:  # run by the scheduler, triggered by the admin's login
            assert (dag_run["state"], dag_run["run_type"], dag_run["triggering_user_name"]) == (
                "success", "manual", "admin"), dag_run
        # the schedules stay on: the next night screens itself
        assert summary["next_runs"]["screen_daily_mammograms"] and summary["next_runs"]["monitor_mammo_model"]
        # and hospital IT sees them in the Airflow UI after logging in
        assert "4 Dags" in ui and "Next Run" in ui
        assert all(dag_id in ui for dag_id in ("retrain_mammo_model", "deploy_mammo_model",
                                               "screen_daily_mammograms", "monitor_mammo_model"))
        assert "Airflow UI       http://127.0.0.1:" in proc.stderr and "airflow.env" in proc.stderr
        _check_night_and_phi(summary, proc, phi, db_url, [state, store, *(tmp_path / n for n in WORKERS)])


def _kill_airflow_mid_run(api: AirflowAPI, env: dict[str, str], state: Path, run_id: str) -> dict[str, Any]:
    """Clear the screening run; once one of its score_batch tasks runs, kill -9 the scheduler,
    the dag-processor and the Celery worker (each whole process group, as a host losing them
    would), restart them as a supervisor would (`radflow stack up --only airflow`) and follow
    the run to its end."""
    import os
    import signal

    started = time.monotonic()
    api.request("POST", f"/api/v2/dags/{SCREEN}/clearTaskInstances",
                json={"dag_run_id": run_id, "dry_run": False, "only_failed": False, "reset_dag_runs": True})
    deadline = time.monotonic() + 600
    while not any(ti["task_id"] == "score_batch" and ti["state"] == "running"
                  for ti in api.task_instances(SCREEN, run_id)):
        assert time.monotonic() < deadline, "no score_batch task ran within 600 s"
        time.sleep(0.5)
    for unit in ("airflow-scheduler", "airflow-dag-processor", "airflow-worker-1"):
        pid = int((state / "run" / f"{unit}.pid").read_text().split()[0])
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    up = subprocess.run([RADFLOW, "stack", "up", "--only", "airflow", "--workers", "1", "--json"], env=env,
                        capture_output=True, text=True, timeout=600)
    assert up.returncode == 0, up.stderr[-3000:]
    run = api.wait(SCREEN, run_id, timeout_s=KILL_BOUND_S)
    return {"state": run["state"], "kill_to_success_s": round(time.monotonic() - killed_at, 1),
            "seconds": time.monotonic() - started}


def _footprint(env: dict[str, str], state: Path, db_url: str) -> dict[str, Any]:
    """What a rerun must not add to: the rows of every results table, Orthanc's instances,
    MLflow's model versions, the sends of every delivery, the serving records."""
    import httpx

    eng = sa.create_engine(db_url)
    try:
        with eng.connect() as conn:
            names = conn.execute(sa.text(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
                "AND table_type = 'BASE TABLE' AND table_name <> 'alembic_version'")).scalars().all()
            tables = {n: conn.execute(sa.text(f'SELECT count(*) FROM "{n}"')).scalar_one()
                      for n in sorted(names)}
            sends = conn.execute(sa.text("SELECT coalesce(sum(attempts), 0) FROM deliveries")).scalar_one()
            deployments = conn.execute(sa.text("SELECT triton_model, model_version, triton_version, sha256 "
                                               "FROM deployments ORDER BY 1")).all()
    finally:
        eng.dispose()
    orthanc = ("radflow", read_secret_file(state / "secrets" / "orthanc.env", "RADFLOW_ORTHANC_PASSWORD"))
    mlflow = ("admin", read_secret_file(state / "secrets" / "mlflow.env", "RADFLOW_MLFLOW_ADMIN_PASSWORD"))
    instances = httpx.get(f"http://127.0.0.1:{env['RADFLOW_ORTHANC_HTTP_PORT']}/statistics",
                          auth=orthanc, timeout=60).json()["CountInstances"]
    search = f"http://127.0.0.1:{env['RADFLOW_MLFLOW_PORT']}/api/2.0/mlflow/model-versions/search"
    versions = httpx.get(search, params={"max_results": 1000}, auth=mlflow,
                         timeout=60).json().get("model_versions", [])
    return {"tables": tables, "instances": instances, "versions": len(versions), "sends": sends,
            "deployments": [tuple(d) for d in deployments]}


def _added(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    return {"result_rows": sum(after["tables"].values()) - sum(before["tables"].values()),
            "orthanc_instances": after["instances"] - before["instances"],
            "model_versions": after["versions"] - before["versions"],
            "deliveries": after["sends"] - before["sends"],
            "deployments": int(after["deployments"] != before["deployments"])}


def _hosts(api: AirflowAPI, dag_id: str, run_id: str) -> dict[str, set[str]]:
    """The hostnames each task of the run ran on (a mapped task: every map index's)."""
    found: dict[str, set[str]] = {}
    for ti in api.task_instances(dag_id, run_id):
        if ti.get("hostname"):
            found.setdefault(ti["task_id"], set()).add(ti["hostname"])
    return found


def _night(db_url: str, study_date: str) -> list[tuple[Any, ...]]:
    eng = sa.create_engine(db_url)
    try:
        with eng.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(
                "SELECT exam_id, model_version, score, flagged, suspicion FROM exam_results "
                "WHERE study_date = :d ORDER BY exam_id"), {"d": study_date}).all()]
    finally:
        eng.dispose()


def _check_night_and_phi(summary: dict[str, Any], proc: subprocess.CompletedProcess[str], phi: set[str],
                         db_url: str, roots: list[Path]) -> None:
    # Tonight's exams are on the worklist exactly once each, sorted by suspicion.
    assert summary["screened_exams"] == summary["synthesized_tonight"] == 8
    page = Path(summary["worklist"]).read_text()
    ids = re.findall(r'data-exam="(ex-[0-9a-f]+)"', page)
    assert len(ids) == 8 == len(set(ids))
    assert "radflow demo: the nightly loop ran end to end" in proc.stderr

    eng = sa.create_engine(db_url)
    with eng.connect() as conn:
        approvers = conn.execute(sa.text(
            "SELECT approver, approved_via FROM promotions")).tuples().all()
        scores = dict(conn.execute(sa.text(
            "SELECT exam_id, score FROM exam_results WHERE study_date = :d"),
            {"d": summary["screened_date"]}).tuples().all())
    assert approvers == [("admin", "airflow")]  # the login that triggered the deploy DAG
    # The morning's monitoring: the night against the champion's validation exams,
    # the served files verified, a report with its plots; 8 exams are too few to judge.
    with eng.connect() as conn:
        monitored = conn.execute(sa.text(
            "SELECT exams, reference_exams, judged, alert, integrity_ok, report FROM monitoring_runs "
            "WHERE study_date = :d"), {"d": summary["screened_date"]}).one()
        tests = conn.execute(sa.text("SELECT count(*) FROM drift_metrics WHERE study_date = :d"),
                             {"d": summary["screened_date"]}).scalar_one()
        integrity = conn.execute(sa.text("SELECT status FROM integrity_checks WHERE check_date = :d"),
                                 {"d": summary["screened_date"]}).scalars().all()
    assert (monitored.exams, monitored.judged, monitored.alert) == (8, False, False)
    assert monitored.reference_exams > 0 and tests > 20
    assert integrity and set(integrity) == {"ok"} and monitored.integrity_ok is True
    report = Path(monitored.report).read_text()
    assert Path(summary["monitoring_report"]) == Path(monitored.report)
    assert report.count("data:image/png;base64,") >= 4
    assert sorted(scores) == sorted(ids)
    page_order = [scores[i] for i in ids]
    assert page_order == sorted(page_order, reverse=True)

    # No PHI past the ingest boundary: lake, manifest, datasets, logs, MLflow, Triton,
    # worklists, the workers' working folders (task logs), Airflow's database (XCom) and
    # the results database.
    assert len(phi) > 100
    places = ["lake", "datasets", "dvc-remote", "logs", "mlflow", "triton_repo", "worklists",
              "airflow", "monitoring", "reports", "training", "evaluation"]  # airflow/: task logs
    blobs = [b for root in roots for b in scanned_files(root, places)]
    blobs += [proc.stdout.encode(), proc.stderr.encode()]
    with eng.connect() as conn:
        for table in ("images", "exam_results", "quarantine", "promotions", "date_offsets",
                      "monitoring_runs", "drift_metrics", "integrity_checks", "deployments"):
            blobs.append(_rows_text(conn.execute(sa.text(f"SELECT * FROM {table}")).all()))
    eng.dispose()
    url = sa.engine.make_url(db_url)
    airflow_db = sa.create_engine(url.set(database=f"{url.database}_airflow"))
    with airflow_db.connect() as conn:  # Airflow's metadata: XCom, run confs, task logs' index
        for table in ("xcom", "dag_run", "task_instance", "asset_event", "log"):
            blobs.append(f"{table}: ".encode() + _rows_text(conn.execute(
                sa.text(f"SELECT * FROM {table}")).all()))
    airflow_db.dispose()
    assert any(b.startswith(b"xcom: [(") for b in blobs), "Airflow's XCom table was scanned"
    leaks = leaked(phi, blobs)
    assert leaks == [], f"PHI found past the ingest boundary: {leaks[:5]}"


def _airflow_ui_after_login(env: dict[str, str], state: Path, screenshot: Path) -> str:
    """Log in to the Airflow UI as the admin in headless Chromium; the DAG list's text."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from pipelines.config import read_secret_file
    from tests.integration.browser import chromium

    url = f"http://127.0.0.1:{env['RADFLOW_AIRFLOW_PORT']}"
    password = read_secret_file(state / "secrets" / "airflow.env", "RADFLOW_AIRFLOW_PASSWORD")
    with chromium("Airflow UI check", 1400, 900) as driver:
        driver.get(f"{url}/dags")
        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.NAME, "username"))
        assert "/auth/login" in driver.current_url  # nothing is shown before logging in
        driver.find_element(By.NAME, "username").send_keys("admin")
        driver.find_element(By.NAME, "password").send_keys(password)
        driver.find_element(By.CSS_SELECTOR, "input[type=submit], button[type=submit]").click()
        WebDriverWait(driver, 60).until(lambda d: "/auth/login" not in d.current_url)
        driver.get(f"{url}/dags")
        WebDriverWait(driver, 60).until(
            lambda d: "screen_daily_mammograms" in d.find_element(By.TAG_NAME, "body").text)
        driver.save_screenshot(str(screenshot))
        return str(driver.find_element(By.TAG_NAME, "body").text)


def _rows_text(rows: list[Any]) -> bytes:
    """Table rows as text to search for identifiers: values by repr, but times in ISO form.
    The repr of a datetime spells its microseconds as a separate number ("33, 249353,"),
    which a 6-digit StudyID can equal by chance: seen once in ~2,000 Airflow timestamps."""
    import datetime as dt

    def text(value: object) -> str:
        return value.isoformat() if isinstance(value, dt.datetime | dt.date | dt.time) else repr(value)

    return ("[" + ", ".join("(" + ", ".join(text(v) for v in row) + ")" for row in rows) + "]").encode()


def _identifiers_in_orthanc(env: dict[str, str], state: Path) -> set[str]:
    """Every identifier of every instance the demo stored in the PACS (not of radflow's own
    results written back into the studies: their patient attributes are the originals',
    already collected, and their content is radflow's, e.g. view names and today's date)."""
    import io

    import httpx
    import pydicom

    from pipelines.deid import original_identifiers

    url = f"http://127.0.0.1:{env['RADFLOW_ORTHANC_HTTP_PORT']}"
    auth = ("radflow", (state / "secrets" / "orthanc.env").read_text().strip().split("=", 1)[1])
    found: set[str] = set()
    with httpx.Client(auth=auth, headers={"Accept-Encoding": "identity"}, timeout=60) as client:
        for instance in client.get(f"{url}/instances").json():
            blob = client.get(f"{url}/instances/{instance}/file").content
            ds = pydicom.dcmread(io.BytesIO(blob), stop_before_pixels=True)
            if ds.get("Manufacturer") != "radflow":
                found |= original_identifiers(ds)
    return found
