"""
### Retrain the mammography model

Weekly (Sunday 03:00 hospital time), whenever monitoring reports sustained drift (the
`mammo_data_drift` asset), and on demand: ingest the studies Orthanc marked stable since the
last watermark, check the manifest against its data contract, freeze a DVC-versioned
dataset (patient-level splits, its own contract), train the CNN on it, log it to MLflow,
register it as `challenger` and evaluate it on the frozen test split. Promotion is a separate, human step
(`deploy_mammo_model`).

Failures: a data contract violation fails the run without retry (fix the data, rerun);
Orthanc or MLflow being down is retried.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from pipelines.orchestration.assets import (
    CHALLENGER_MAMMO_MODEL,
    MAMMO_DATA_DRIFT,
    VALIDATED_MAMMO_DATASET,
)
from pipelines.orchestration.tasks import hospital_timezone


@dag(
    dag_id="retrain_mammo_model",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 3 * * 0", timezone=hospital_timezone()),
        assets=[MAMMO_DATA_DRIFT],
    ),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "ml-team", "retries": 2, "retry_delay": pendulum.duration(minutes=5)},
    tags=["radflow", "mammo", "training"],
    doc_md=__doc__,
)
def retrain_mammo_model() -> None:
    @task
    def ingest_new_studies() -> dict:
        from pipelines.ingest import run
        from pipelines.orchestration.tasks import call_stage

        return call_stage(run.run)

    @task
    def validate_manifest(ingested: dict) -> dict:
        from pipelines.orchestration.tasks import call_stage
        from pipelines.validation import run

        return call_stage(run.run)

    @task(outlets=[VALIDATED_MAMMO_DATASET])
    def build_dataset(validated: dict) -> dict:
        from pipelines.datasets import build
        from pipelines.orchestration.tasks import call_stage

        return call_stage(build.run)

    @task(outlets=[CHALLENGER_MAMMO_MODEL])
    def train_challenger(dataset: dict) -> dict:
        from pipelines.orchestration.tasks import call_stage
        from pipelines.training import run

        return call_stage(run.run)

    @task
    def evaluate_challenger(trained: dict) -> dict:
        from pipelines.datasets import evaluate
        from pipelines.orchestration.tasks import call_stage

        return call_stage(evaluate.run)

    evaluate_challenger(train_challenger(build_dataset(validate_manifest(ingest_new_studies()))))


retrain_mammo_model()
