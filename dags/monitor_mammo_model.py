"""
### Monitor the mammography model

Every morning (RADFLOW_MONITORING_SCHEDULE, default 06:00 in RADFLOW_HOSPITAL_TIMEZONE,
after the night's screening) the previous day's screened exams are compared with the
champion's validation data: acquisition metadata (manufacturer, model, software version,
kVp, exposure, thickness, compression force, pixel spacing), image statistics, the model's
embeddings (penultimate layer), its scores (KS, PSI, flag rate) and artifact rates per
device, every test corrected together (Benjamini-Hochberg, RADFLOW_DRIFT_ALPHA). Results
are stored as time series and a daily HTML report is written under
`<state>/reports/monitoring/<task>/`.

`check_model_integrity` first hashes every model file Triton serves against its MLflow
registered version, reports unknown models and any champion that no audited promotion
approved; a problem fails that task (and notifies) but the drift monitoring still runs.

Drift on RADFLOW_DRIFT_MIN_NIGHTS of the last RADFLOW_DRIFT_WINDOW_NIGHTS judged nights
raises an alert (notified); `trigger_retraining` then succeeds and emits the
`mammo_data_drift` asset, which starts `retrain_mammo_model`. A single noisy night does not.
Missed days are caught up in order from the go-live moment (the sustained rule reads the
previous nights).

Once outcomes arrive (`radflow labels import`), the report also shows the realised
performance per model version and month (`radflow outcomes`), and the night notifies an
`outcomes` alert when the lower bound of the champion's realised sensitivity is below the
policy's `outcomes.min_sensitivity`; that alert starts no retraining.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task

from pipelines.orchestration.assets import MAMMO_DATA_DRIFT
from pipelines.orchestration.controls import default_args
from pipelines.orchestration.tasks import monitoring_schedule

SCHEDULE, START = monitoring_schedule()


@dag(
    dag_id="monitor_mammo_model",
    schedule=SCHEDULE,
    start_date=START,
    catchup=True,  # the sustained-drift rule needs every night, in order
    max_active_runs=1,
    default_args=default_args("ml-team"),
    tags=["radflow", "mammo", "monitoring"],
    params={"study_date": Param("", type="string", description="YYYY-MM-DD; empty = previous day"),
            "task": Param("mammo", type="string", description="screening task (tasks.yaml)")},
    doc_md=__doc__,
)
def monitor_mammo_model() -> None:
    @task
    def pick_study_date() -> str:
        from pipelines.orchestration.tasks import study_date_of

        return study_date_of(get_current_context())

    @task
    def check_model_integrity(study_date: str) -> dict:
        from pipelines.monitoring import run
        from pipelines.orchestration.tasks import call_stage, fail_unless_ok

        return fail_unless_ok(call_stage(run.check_integrity, check_date=study_date))

    @task(trigger_rule="all_done")  # an integrity problem must not stop the drift monitoring
    def monitor_drift(study_date: str) -> dict:
        from pipelines.monitoring import run
        from pipelines.orchestration.tasks import call_stage

        return call_stage(run.run, study_date=study_date, task=get_current_context()["params"]["task"])

    @task(outlets=[MAMMO_DATA_DRIFT])
    def trigger_retraining(monitor: dict) -> dict:
        from pipelines.orchestration.tasks import retrain_if_alerted

        return retrain_if_alerted(monitor)

    day = pick_study_date()
    checked = check_model_integrity(day)
    drift = monitor_drift(day)
    checked >> drift
    trigger_retraining(drift)


monitor_mammo_model()
