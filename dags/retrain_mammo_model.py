"""
### Retrain the mammography model

Weekly (RADFLOW_RETRAIN_SCHEDULE, default Sunday 03:00 hospital time), whenever monitoring
reports sustained drift (the `mammo_data_drift` asset), and on demand. A run started by the
cron or by drift first waits for the training window: inside clinical hours
(RADFLOW_CLINICAL_HOURS on RADFLOW_CLINICAL_DAYS) `wait_for_training_window` defers until
they end, holding no worker slot; a run someone triggers by hand starts at once.

Then: ingest the studies Orthanc marked stable since the last watermark (a slot of the
`pacs` pool, on a worker of the `pacs` Celery queue), check the manifest against its data
contract, freeze a DVC-versioned dataset (patient-level splits, its own contract) and
fine-tune on it (the `training` pool's one slot, on a worker of the `gpu` queue,
RADFLOW_TRAINING_TIMEOUT_MINUTES) the registered base model
`mammo-screening-base@base`, or what the `base` param names (an MLflow model URI, a weights
file, `scratch`); from scratch only when no base is registered. The version's `base_model`
and `training_start` tags say which. It is logged to MLflow, registered as `challenger`,
evaluated on the frozen test split beside the base as is and the champion, and given the
monitoring reference the nights will be compared with (its validation exams, seen by its
ONNX file). Promotion is a separate, human step (`deploy_mammo_model`).

Clearing a run (or a retry after the version was registered) trains nothing again: the
version is tagged with its run (`airflow_run`), and the cleared run takes it up.

Failures: a data contract violation fails the run without retry (fix the data, rerun);
Orthanc or MLflow being down is retried with exponential backoff; a failed task notifies.
"""

from __future__ import annotations

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, get_current_context, task

from pipelines.orchestration.assets import (
    CHALLENGER_MAMMO_MODEL,
    MAMMO_DATA_DRIFT,
    VALIDATED_MAMMO_DATASET,
)
from pipelines.orchestration.controls import default_args, training_timeout
from pipelines.orchestration.operators import TrainingWindow
from pipelines.orchestration.tasks import hospital_timezone, retrain_schedule

CRON, START = retrain_schedule()


@dag(
    dag_id="retrain_mammo_model",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(CRON, timezone=hospital_timezone()),
        assets=[MAMMO_DATA_DRIFT],
    ),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args=default_args("ml-team"),
    tags=["radflow", "mammo", "training"],
    params={"base": Param("", type="string",
                          description="empty: fine-tune the registered base (mammo-screening-base@base), "
                                      "from scratch if none; or an MLflow model URI, a weights file, "
                                      "or 'scratch'")},
    doc_md=__doc__,
)
def retrain_mammo_model() -> None:
    window = TrainingWindow(task_id="wait_for_training_window")

    @task(pool="pacs", queue="pacs")
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
        from pipelines.datasets import run as build
        from pipelines.orchestration.tasks import call_stage

        return call_stage(build.run)

    @task(pool="training", queue="gpu", execution_timeout=training_timeout())
    def train_challenger(dataset: dict) -> dict:
        from pipelines.orchestration.tasks import call_stage, run_key
        from pipelines.training import run

        context = get_current_context()
        return call_stage(run.run, base=context["params"]["base"] or None, run_key=run_key(context))

    @task(outlets=[CHALLENGER_MAMMO_MODEL])
    def build_monitoring_reference(trained: dict) -> dict:
        from pipelines.monitoring import reference
        from pipelines.orchestration.tasks import call_stage

        return call_stage(reference.build_for_version, version=trained["model_version"], task="mammo")

    @task
    def evaluate_challenger(trained: dict) -> dict:
        from pipelines.evaluation import run as evaluate
        from pipelines.orchestration.tasks import call_stage

        return call_stage(evaluate.run)

    ingested = ingest_new_studies()
    window >> ingested
    trained = train_challenger(build_dataset(validate_manifest(ingested)))
    evaluate_challenger(trained)
    build_monitoring_reference(trained)


retrain_mammo_model()
