"""
### Screen yesterday's mammograms

Every night at 02:00 in the hospital's time zone (RADFLOW_HOSPITAL_TIMEZONE): the
previous day's MG exams (study date = logical date - 1 day in that time zone, or the
`study_date` param) are pulled from Orthanc, scored by the champion on Triton, stored in
the results database, and published as the morning worklist, sorted by suspicion.

Failures: Orthanc or Triton down is retried; nothing is half-written (results are one
transaction, the worklist one rename).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from pipelines.orchestration.tasks import hospital_timezone


@dag(
    dag_id="screen_daily_mammograms",
    schedule="0 2 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz=hospital_timezone()),  # 02:00 local time
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "radiology-it", "retries": 2, "retry_delay": pendulum.duration(minutes=10)},
    tags=["radflow", "mammo", "screening"],
    params={"study_date": Param("", type="string", description="YYYY-MM-DD; empty = previous day")},
    doc_md=__doc__,
)
def screen_daily_mammograms() -> None:
    @task
    def pick_study_date() -> str:
        from pipelines.orchestration.tasks import previous_day

        ctx = get_current_context()
        return previous_day(ctx["logical_date"], ctx["params"]["study_date"])

    @task
    def screen_exams(study_date: str) -> dict:
        from pipelines.orchestration.tasks import call_stage
        from pipelines.screening import run

        return call_stage(run.run, study_date=study_date)

    screen_exams(pick_study_date())


screen_daily_mammograms()
