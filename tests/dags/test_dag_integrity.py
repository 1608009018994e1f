"""DAG integrity, as in Airflow's own DAG tests (STYLE rule 13).

Each DAG file is parsed by Airflow's DagBag in a fresh interpreter (AIRFLOW_HOME in a tmp
dir, no example DAGs), with every Variable / Connection lookup patched to raise and be
recorded, and the heavy libraries in sys.modules read back after parsing. The parses run
in parallel once per module; a planted bad DAG proves the probe catches what it claims to.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipelines import config
from pipelines.orchestration.tasks import previous_day

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
HEAVY = ("torch", "mlflow", "great_expectations", "pydicom", "tritonclient", "onnxruntime",
         "sklearn")
HOSPITAL_TZ = "America/New_York"  # what the parses see; not UTC, to catch UTC-only schedules
CONFIGURED = {"RADFLOW_SCREENING_SCHEDULE": "30 1 * * 1-5", "RADFLOW_SCREENING_START_DATE": "2026-09-01",
              "RADFLOW_SCREENING_DEADLINE": "06:15", "RADFLOW_TASK_TIMEOUT_MINUTES": "45",
              "RADFLOW_TASK_RETRIES": "4", "RADFLOW_RETRY_DELAY_MINUTES": "2"}
EXPECTED = {
    "retrain_mammo_model": {"wait_for_training_window": ["ingest_new_studies"],
                            "ingest_new_studies": ["validate_manifest"],
                            "validate_manifest": ["build_dataset"],
                            "build_dataset": ["train_challenger"],
                            "train_challenger": ["build_monitoring_reference", "evaluate_challenger"],
                            "build_monitoring_reference": [],
                            "evaluate_challenger": []},
    "deploy_mammo_model": {"promote_challenger": ["deploy_champion"], "deploy_champion": []},
    "screen_daily_mammograms": {"pick_study_date": ["merge_screening", "plan_screening",
                                                    "retrieve_from_pacs"],
                                "retrieve_from_pacs": ["plan_screening"],
                                "plan_screening": ["score_batch"],
                                "score_batch": ["merge_screening"],
                                "merge_screening": ["catch_up_late_arrivals", "deliver_results",
                                                    "notify_reading_room"],
                                "deliver_results": ["apply_retention", "catch_up_late_arrivals"],
                                "apply_retention": [],
                                "catch_up_late_arrivals": ["notify_late_arrivals"],
                                "notify_late_arrivals": [], "notify_reading_room": []},
    "monitor_mammo_model": {"pick_study_date": ["check_model_integrity", "monitor_drift"],
                            "check_model_integrity": ["monitor_drift"],
                            "monitor_drift": ["trigger_retraining"], "trigger_retraining": []},
}
CATCH_UP = {"screen_daily_mammograms", "monitor_mammo_model"}  # every missed night, in order

PROBE = r'''
import json, os, sys
HEAVY = %(heavy)r
lookups = []

def forbidden(what):
    def call(*args, **kwargs):
        lookups.append(what)
        raise RuntimeError(f"{what} called while parsing DAGs")
    return call

import airflow.sdk.execution_time.context as ctx
for name in ("_get_variable", "_get_connection", "_async_get_connection", "_get_variable_keys"):
    if hasattr(ctx, name):
        setattr(ctx, name, forbidden(name))
from airflow.sdk import BaseHook, Connection, Variable
Variable.get = classmethod(forbidden("Variable.get"))
Connection.get = classmethod(forbidden("Connection.get"))
BaseHook.get_connection = classmethod(forbidden("BaseHook.get_connection"))
try:  # the pre-Task-SDK spellings, should a DAG use them
    from airflow.models.connection import Connection as LegacyConnection
    from airflow.models.variable import Variable as LegacyVariable
    LegacyVariable.get = classmethod(forbidden("airflow.models.Variable.get"))
    LegacyConnection.get_connection_from_secrets = classmethod(
        forbidden("airflow.models.Connection.get_connection_from_secrets"))
except ImportError:
    pass

before = sorted(m for m in HEAVY if m in sys.modules)
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
dags = {}
for dag_id, dag in bag.dags.items():
    dags[dag_id] = {
        "fileloc": dag.fileloc,
        "owners": sorted({t.owner for t in dag.tasks}),
        "retries": sorted({t.retries for t in dag.tasks}),
        "default_args": {k: str(v) for k, v in (dag.default_args or {}).items()},
        "tags": sorted(dag.tags or []),
        "doc_md": dag.doc_md,
        "schedule": None if dag.schedule is None else str(dag.schedule),
        "timetable": type(dag.timetable).__name__,
        "timezone": getattr(getattr(dag.timetable, "timezone", None), "name", None),
        "manual_only": not dag.timetable.can_be_scheduled,
        "max_active_runs": dag.max_active_runs,
        "catchup": dag.catchup,
        "start_date": None if dag.start_date is None else dag.start_date.isoformat(),
        "params": {k: dag.params.get_param(k).value for k in dag.params},
        "tasks": {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks},
        "outlets": {t.task_id: sorted(getattr(o, "name", str(o)) for o in (t.outlets or []))
                    for t in dag.tasks if t.outlets},
        "trigger_rules": {t.task_id: getattr(t.trigger_rule, "value", str(t.trigger_rule))
                          for t in dag.tasks},
        "pools": {t.task_id: t.pool for t in dag.tasks},
        "queues": {t.task_id: t.queue for t in dag.tasks},
        "mapped": sorted(t.task_id for t in dag.tasks if getattr(t, "is_mapped", False)),
        "operators": {t.task_id: type(t).__name__ for t in dag.tasks},
        "timeouts": {t.task_id: t.execution_timeout and t.execution_timeout.total_seconds()
                     for t in dag.tasks},
        "backoff": sorted({float(t.retry_exponential_backoff) for t in dag.tasks}),
        "retry_delays": sorted({t.retry_delay.total_seconds() for t in dag.tasks}),
        "failure_callbacks": sorted({f"{c.__module__}.{c.__name__}" for t in dag.tasks
                                     for c in (t.on_failure_callback
                                               if isinstance(t.on_failure_callback, list)
                                               else [t.on_failure_callback]) if c}),
        "tasks_without_failure_callback": [t.task_id for t in dag.tasks if not t.on_failure_callback],
        "deadline": None if not dag.deadline else [
            {"reference": type(d.reference).__name__, "interval_s": d.interval.total_seconds(),
             "callback": str(d.callback.path), "kwargs": d.callback.kwargs}
            for d in (dag.deadline if isinstance(dag.deadline, list) else [dag.deadline])],
    }
print(json.dumps({
    "import_errors": {str(k): str(v)[-1500:] for k, v in bag.import_errors.items()},
    "dags": dags,
    "heavy_before": before,
    "heavy_after": sorted(m for m in HEAVY if m in sys.modules),
    "lookups": lookups,
}))
'''

CALL_STAGE = r'''
import json
from airflow.sdk.exceptions import AirflowFailException
from pipelines.domain import ValidationResult
from pipelines.errors import DataContractViolation, OrthancUnavailable
from pipelines.orchestration.tasks import call_stage

def fails(exc):
    def stage(**kwargs):
        raise exc
    return stage

out = {}
try:
    call_stage(fails(DataContractViolation("modality CT in 1 row")))
except AirflowFailException as exc:
    out["permanent"] = ["AirflowFailException", str(exc)]
except Exception as exc:
    out["permanent"] = [type(exc).__name__, str(exc)]
try:
    call_stage(fails(OrthancUnavailable("Orthanc at http://pacs did not answer")))
except Exception as exc:
    out["transient"] = [type(exc).__name__, str(exc)]
out["result"] = call_stage(lambda **kw: ValidationResult(**kw), suite="mammo_manifest.v1",
                           success=True, rows=12, evaluated_expectations=19, failed=[])
print(json.dumps(out))
'''

CANARY = '''
"""A DAG that breaks every parse-time rule (used to prove the probe catches it)."""
import pendulum
import sklearn  # noqa: F401
from airflow.sdk import BaseHook, Connection, Variable, dag, task

for lookup in (lambda: Variable.get("threshold"), lambda: Connection.get("pacs"),
               lambda: BaseHook.get_connection("results_db")):
    try:
        lookup()
    except Exception:
        pass


@dag(dag_id="canary", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"))
def canary():
    @task
    def noop():
        return 1
    noop()


canary()
'''


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "RADFLOW_")) or k.startswith("RADFLOW_TEST_")}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
        "RADFLOW_STATE_DIR": str(home / "radflow"),
        "RADFLOW_HOSPITAL_TIMEZONE": HOSPITAL_TZ,
        **extra,
    })
    return env


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """{file name: probe result} for every DAG file and the canary, parsed in parallel."""
    work = tmp_path_factory.mktemp("dagbag")
    probe = work / "probe.py"
    probe.write_text(PROBE % {"heavy": HEAVY})
    canary_dir = work / "canary_dags"
    canary_dir.mkdir()
    (canary_dir / "canary.py").write_text(textwrap.dedent(CANARY))
    (work / "call_stage.py").write_text(CALL_STAGE)
    targets = {p.name: [str(probe), str(p)] for p in sorted(DAGS.glob("*.py"))}
    targets["canary.py"] = [str(probe), str(canary_dir / "canary.py")]
    targets["call_stage"] = [str(work / "call_stage.py")]
    targets["configured"] = [str(probe), str(DAGS / "screen_daily_mammograms.py")]
    procs = {}
    for name, argv in targets.items():
        home = work / f"home-{name.removesuffix('.py')}"
        home.mkdir()
        extra = CONFIGURED if name == "configured" else {}
        procs[name] = subprocess.Popen(
            [sys.executable, *argv], env=_env(home, **extra), cwd=home,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = {}
    try:
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, f"parsing {name} crashed:\n{err[-3000:]}"
            results[name] = json.loads(out.strip().splitlines()[-1])
    finally:
        for proc in procs.values():  # only ours, and only if still running
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


def _dag_files(parsed: dict[str, Any]) -> list[str]:
    return [name for name in parsed if name.endswith(".py") and name != "canary.py"]


@pytest.fixture(scope="module")
def dags(parsed: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, result in parsed.items():
        if name.endswith(".py") and name != "canary.py":
            out.update(result["dags"])
    return out


def test_the_dag_folder_holds_the_four_dags(dags: dict[str, dict[str, Any]]) -> None:
    assert set(dags) == set(EXPECTED)


def test_no_import_errors(parsed: dict[str, dict[str, Any]]) -> None:
    errors = {name: r["import_errors"] for name, r in parsed.items() if name in _dag_files(parsed)}
    assert errors == {name: {} for name in errors}


def test_every_dag_file_holds_one_dag_named_like_the_file(parsed: dict[str, dict[str, Any]]) -> None:
    for name, result in parsed.items():
        if name not in _dag_files(parsed):
            continue
        assert list(result["dags"]) == [name.removesuffix(".py")]
        (dag,) = result["dags"].values()
        assert Path(dag["fileloc"]).name == name


@pytest.mark.parametrize("dag_id", list(EXPECTED))
def test_policy_owner_retries_tags_and_docs(dags: dict[str, dict[str, Any]], dag_id: str) -> None:
    dag = dags[dag_id]
    assert dag["owners"] and "airflow" not in dag["owners"]  # "airflow" is the default owner
    assert "retries" in dag["default_args"]
    assert len(dag["retries"]) == 1 and dag["retries"][0] >= 0
    assert "radflow" in dag["tags"]
    assert dag["doc_md"] and len(dag["doc_md"].strip()) > 80
    assert dag["catchup"] is (dag_id in CATCH_UP)  # missed nights are screened and monitored


@pytest.mark.parametrize("dag_id", list(EXPECTED))
def test_task_graph(dags: dict[str, dict[str, Any]], dag_id: str) -> None:
    assert dags[dag_id]["tasks"] == EXPECTED[dag_id]


def test_deploy_is_manual_and_its_approver_is_the_login_not_a_param(dags: dict[str, dict[str, Any]]) -> None:
    dag = dags["deploy_mammo_model"]
    assert dag["manual_only"] is True and dag["schedule"] is None
    assert list(dag["params"]) == ["reason"]  # the approver is the run's triggering user
    assert dag["retries"] == [0]  # a promotion is never retried automatically


@pytest.mark.parametrize("dag_id", list(EXPECTED))
def test_every_task_has_a_timeout_exponential_backoff_and_notifies_when_it_fails(
        dags: dict[str, dict[str, Any]], dag_id: str) -> None:
    dag = dags[dag_id]
    assert dag["tasks_without_failure_callback"] == []
    assert dag["failure_callbacks"] == ["pipelines.orchestration.alerts.on_task_failure"]
    assert all(seconds and seconds > 0 for seconds in dag["timeouts"].values()), dag["timeouts"]
    assert dag["backoff"] == [2.0]


def test_pacs_pulls_and_training_take_their_pools(dags: dict[str, dict[str, Any]]) -> None:
    assert dags["retrain_mammo_model"]["pools"]["ingest_new_studies"] == "pacs"
    screening = dags["screen_daily_mammograms"]
    for name in ("retrieve_from_pacs", "plan_screening", "score_batch", "merge_screening",
                 "deliver_results", "catch_up_late_arrivals"):  # all that reads or writes Orthanc or the PACS
        assert screening["pools"][name] == "pacs", name
    assert dags["retrain_mammo_model"]["pools"]["train_challenger"] == "training"
    # training has its own, longer timeout (12 h by default, every other task 2 h)
    timeouts = dags["retrain_mammo_model"]["timeouts"]
    assert timeouts["train_challenger"] == 720 * 60 and timeouts["ingest_new_studies"] == 120 * 60


def test_a_night_is_scored_in_mapped_batches_merged_once_every_batch_is_in(
        dags: dict[str, dict[str, Any]]) -> None:
    dag = dags["screen_daily_mammograms"]
    assert dag["mapped"] == ["score_batch"]  # one task instance per batch (dynamic task mapping)
    # a night without exams maps no batch (skipped): the merge still publishes its empty page,
    # while a failed batch stops it
    assert dag["trigger_rules"]["merge_screening"] == "none_failed"
    # batches spread over every worker; the PACS and the night's plan and merge run on pacs
    assert dag["queues"]["score_batch"] == "default"
    pacs_work = ("retrieve_from_pacs", "plan_screening", "merge_screening", "deliver_results",
                 "apply_retention", "catch_up_late_arrivals")
    assert {dag["queues"][t] for t in pacs_work} == {"pacs"}


def test_every_task_goes_to_a_known_queue_training_to_gpu_pacs_work_to_pacs(
        dags: dict[str, dict[str, Any]]) -> None:
    from pipelines.config import QUEUES

    for dag in dags.values():
        assert set(dag["queues"].values()) <= set(QUEUES)
    retrain = dags["retrain_mammo_model"]["queues"]
    assert (retrain["train_challenger"], retrain["ingest_new_studies"]) == ("gpu", "pacs")
    others = {q for t, q in retrain.items() if t not in ("train_challenger", "ingest_new_studies")}
    assert others == {"default"}


def test_retraining_first_waits_for_the_training_window(dags: dict[str, dict[str, Any]]) -> None:
    dag = dags["retrain_mammo_model"]
    assert dag["operators"]["wait_for_training_window"] == "TrainingWindow"
    assert dag["tasks"]["wait_for_training_window"] == ["ingest_new_studies"]


def test_the_night_has_a_deadline_alert_at_seven_local(dags: dict[str, dict[str, Any]]) -> None:
    (deadline,) = dags["screen_daily_mammograms"]["deadline"]
    assert deadline["reference"] == "DagRunLogicalDateDeadline"
    assert deadline["interval_s"] == 5 * 3600  # the 02:00 tick to 07:00
    assert deadline["callback"] == "pipelines.orchestration.alerts.screening_deadline_missed"
    assert deadline["kwargs"] == {"deadline": f"07:00 {HOSPITAL_TZ}"}


def test_timeouts_retries_and_the_deadline_are_settings(parsed: dict[str, dict[str, Any]]) -> None:
    dag = parsed["configured"]["dags"]["screen_daily_mammograms"]
    assert set(dag["timeouts"].values()) == {45 * 60}
    assert dag["retries"] == [4] and dag["retry_delays"] == [120.0]
    (deadline,) = dag["deadline"]
    assert deadline["interval_s"] == 4 * 3600 + 45 * 60  # 01:30 to 06:15


def test_screening_runs_nightly_at_two_one_run_at_a_time(dags: dict[str, dict[str, Any]]) -> None:
    dag = dags["screen_daily_mammograms"]
    assert dag["schedule"] == "0 2 * * *"
    assert dag["manual_only"] is False
    assert dag["max_active_runs"] == 1
    assert "study_date" in dag["params"] and dag["params"]["task"] == "mammo"


def test_the_screening_schedule_and_first_night_are_configurable(
        parsed: dict[str, dict[str, Any]]) -> None:
    dag = parsed["configured"]["dags"]["screen_daily_mammograms"]
    assert dag["schedule"] == "30 1 * * 1-5" and dag["catchup"] is True
    assert dag["start_date"] == "2026-09-01T04:00:00+00:00"  # midnight in New York (EDT), in UTC
    assert dag["timezone"] == HOSPITAL_TZ


def test_retraining_runs_weekly_and_when_monitoring_reports_drift(
        dags: dict[str, dict[str, Any]]) -> None:
    dag = dags["retrain_mammo_model"]
    assert dag["manual_only"] is False
    assert dag["timetable"] == "AssetOrTimeSchedule"
    assert "0 3 * * 0" in dag["schedule"] and HOSPITAL_TZ in dag["schedule"]
    assert "mammo_data_drift" in dag["schedule"]
    assert dag["max_active_runs"] == 1


def test_monitoring_runs_each_morning_after_screening_and_can_start_retraining(
        dags: dict[str, dict[str, Any]]) -> None:
    dag = dags["monitor_mammo_model"]
    assert dag["schedule"] == "0 6 * * *" and dag["timezone"] == HOSPITAL_TZ
    assert dag["max_active_runs"] == 1 and "study_date" in dag["params"]
    # only the retraining trigger carries the asset retrain_mammo_model is scheduled on
    assert dag["outlets"] == {"trigger_retraining": ["mammo_data_drift"]}
    # a failed integrity check must not stop drift monitoring
    assert dag["trigger_rules"]["monitor_drift"] == "all_done"


def test_parsing_a_dag_file_imports_no_heavy_library(parsed: dict[str, dict[str, Any]]) -> None:
    loaded = {name: r["heavy_after"] for name, r in parsed.items() if name in _dag_files(parsed)}
    assert loaded == {name: [] for name in loaded}


def test_parsing_looks_up_no_connection_or_variable(parsed: dict[str, dict[str, Any]]) -> None:
    lookups = {name: r["lookups"] for name, r in parsed.items() if name in _dag_files(parsed)}
    assert lookups == {name: [] for name in lookups}


def test_screening_runs_at_two_in_the_hospital_time_zone(dags: dict[str, dict[str, Any]]) -> None:
    assert dags["screen_daily_mammograms"]["timezone"] == HOSPITAL_TZ


def test_a_permanent_error_fails_the_task_without_retry_a_transient_one_is_retried(
    parsed: dict[str, dict[str, Any]]
) -> None:
    out = parsed["call_stage"]
    assert out["permanent"] == ["AirflowFailException",
                                "DataContractViolation: modality CT in 1 row"]
    assert out["transient"] == ["OrthancUnavailable", "Orthanc at http://pacs did not answer"]
    assert out["result"] == {"suite": "mammo_manifest.v1", "success": True, "rows": 12,
                             "evaluated_expectations": 19, "failed": []}


def test_the_probe_catches_a_dag_that_breaks_the_rules(parsed: dict[str, dict[str, Any]]) -> None:
    canary = parsed["canary.py"]
    assert list(canary["dags"]) == ["canary"]
    assert canary["heavy_before"] == [] and "sklearn" in canary["heavy_after"]
    assert {"Variable.get", "Connection.get", "BaseHook.get_connection"} <= set(canary["lookups"])


# pick_study_date: which day a nightly run screens.

@pytest.fixture
def hospital_tz(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    config.reset_settings()
    yield monkeypatch
    config.reset_settings()


@pytest.mark.parametrize(
    ("tz", "logical", "expected"),
    [
        ("UTC", "2026-11-21T02:00:00+00:00", "2026-11-20"),
        # 02:00 UTC is 21:00 the evening before in New York: the day before that.
        ("America/New_York", "2026-11-21T02:00:00+00:00", "2026-11-19"),
        ("Europe/Berlin", "2026-11-21T02:00:00+00:00", "2026-11-20"),
        ("Europe/Berlin", "2026-03-29T23:30:00+00:00", "2026-03-29"),  # after the DST switch
        ("UTC", "2027-01-01T02:00:00+00:00", "2026-12-31"),
    ],
)
def test_previous_day_is_the_day_before_in_the_hospital_time_zone(
    hospital_tz: pytest.MonkeyPatch, tz: str, logical: str, expected: str
) -> None:
    hospital_tz.setenv("RADFLOW_HOSPITAL_TIMEZONE", tz)
    assert previous_day(dt.datetime.fromisoformat(logical), None) == expected


@pytest.mark.parametrize("override", ["2026-03-14", "2026-02-28"])
def test_an_explicit_study_date_wins(hospital_tz: pytest.MonkeyPatch, override: str) -> None:
    hospital_tz.setenv("RADFLOW_HOSPITAL_TIMEZONE", "America/New_York")
    assert previous_day(dt.datetime(2026, 11, 21, 2, tzinfo=dt.UTC), override) == override


def test_an_empty_override_means_the_previous_day(hospital_tz: pytest.MonkeyPatch) -> None:
    hospital_tz.setenv("RADFLOW_HOSPITAL_TIMEZONE", "UTC")
    assert previous_day(dt.datetime(2026, 11, 21, 2, tzinfo=dt.UTC), "") == "2026-11-20"


def test_a_malformed_override_is_refused(hospital_tz: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError):
        previous_day(dt.datetime(2026, 11, 21, 2, tzinfo=dt.UTC), "21/11/2026")


def test_a_run_triggered_without_a_logical_date_screens_the_day_before_it_was_triggered(
        hospital_tz: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from pipelines.orchestration.tasks import study_date_of

    hospital_tz.setenv("RADFLOW_HOSPITAL_TIMEZONE", "UTC")
    run = SimpleNamespace(run_after=dt.datetime(2026, 11, 21, 9, 30, tzinfo=dt.UTC))
    assert study_date_of({"logical_date": None, "dag_run": run, "params": {"study_date": ""}}) == "2026-11-20"
    assert study_date_of({"dag_run": run, "params": {"study_date": "2026-03-14"}}) == "2026-03-14"
    scheduled = {"logical_date": dt.datetime(2026, 11, 23, 2, tzinfo=dt.UTC), "dag_run": run,
                 "params": {"study_date": ""}}
    assert study_date_of(scheduled) == "2026-11-22"
