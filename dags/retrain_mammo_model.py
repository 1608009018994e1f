"""
### Retrain the mammography model

Weekly (Sunday 03:00) and on demand: ingest the studies Orthanc marked stable since the
last watermark, check the manifest against its data contract, then fine-tune the CNN,
log it to MLflow and register it as `challenger`. Promotion is a separate, human step
(`deploy_mammo_model`).

Failures: a data contract violation fails the run without retry (fix the data, rerun);
Orthanc or MLflow being down is retried.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from pipelines.orchestration.assets import CHALLENGER_MAMMO_MODEL, VALIDATED_MAMMO_DATASET


@dag(
    dag_id="retrain_mammo_model",
    schedule="0 3 * * 0",
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

    @task(outlets=[VALIDATED_MAMMO_DATASET])
    def validate_manifest(ingested: dict) -> dict:
        from pipelines.orchestration.tasks import call_stage
        from pipelines.validation import run

        return call_stage(run.run)

    @task(outlets=[CHALLENGER_MAMMO_MODEL])
    def train_challenger(validated: dict) -> dict:
        from pipelines.orchestration.tasks import call_stage
        from pipelines.training import run

        return call_stage(run.run)

    train_challenger(validate_manifest(ingest_new_studies()))


retrain_mammo_model()
