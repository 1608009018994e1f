"""
### Screen yesterday's mammograms

Every night (RADFLOW_SCREENING_SCHEDULE, default 02:00 in RADFLOW_HOSPITAL_TIMEZONE) the
previous day's exams of the screening task (param `task`, default `mammo`: MG, 4 views)
are first retrieved from the hospital PACS when it is declared in pull mode
(`retrieve_from_pacs`: C-FIND, then C-MOVE or C-GET per study, retried; what could not be
retrieved is listed on the worklist page), then taken from the gateway Orthanc (study date
= logical date - 1 day in that time zone, or the `study_date` param), checked for
completeness, image-QC'd, scored by the champion on Triton (and by the shadow model when
one is deployed), aggregated per exam with QC-flagged views discounted, given a
suspicion 1-10 (validation deciles) and flagged by the operating point or the daily
reading capacity (RADFLOW_SCREENING_CAPACITY). Results go to the database, a DICOM SR, a
Mammography CAD SR and heatmap secondary captures into each study in the gateway Orthanc,
the night's worklist page (and CSV/JSON); then `notify_reading_room` (retried on its own,
so a mail server hiccup never reruns the night) posts the flagged exams to the webhook
(RADFLOW_NOTIFY_WEBHOOK_URL) and/or e-mails them (RADFLOW_NOTIFY_EMAIL_TO, Airflow SMTP
connection RADFLOW_NOTIFY_SMTP_CONN_ID).

`deliver_results` sends each exam's SR, CAD SR and heatmaps to the declared PACS and an
HL7 ORU / FHIR DiagnosticReport to the RIS (tracked per exam in the `deliveries` table; a
rerun sends only what changed or failed), and `apply_retention` then deletes from the
gateway the studies that are ingested, screened, delivered and older than
RADFLOW_GATEWAY_RETENTION_DAYS (the PACS keeps everything).

One night is shared by workers: `plan_screening` lists the night's studies (exam
pseudonyms, in a stable order) and cuts them into batches of RADFLOW_SCREENING_BATCH_EXAMS
(default 50); `score_batch` runs once per batch (dynamic task mapping, on any worker of the
`default` queue): download, views checked, image QC, Triton scores and heatmaps, exam
score and suspicion, staged in the database keyed by (task, night, batch), so clearing one
batch reruns and replaces that batch only. `merge_screening` runs once every batch is in
(it refuses, naming the missing batches, otherwise): flags over the whole night (the reading
capacity ranks every exam), the results in one keyed transaction, the SR, CAD SR and
heatmaps, the worklist. A night without exams has no batch and still gets its (empty) page.

`catch_up_late_arrivals` then screens again, whole, each night of the previous
RADFLOW_SCREENING_LATE_DAYS (7) days whose studies in the gateway grew after it was planned
(a study that arrived late, or was still arriving while its night was planned:
pipelines/screening/late.py), delivers its results, and `notify_late_arrivals` notifies
their flagged exams.

Missed nights are caught up one at a time from the go-live moment (RADFLOW_SCREENING_START_DATE).
Tasks that read or write the gateway Orthanc take a slot of the `pacs` pool; those that talk
to the PACS or plan and merge the night run on the `pacs` queue. A night not finished by
RADFLOW_SCREENING_DEADLINE (default 07:00 local) raises a deadline alert; a failed task
notifies (retries back off exponentially, every task has an execution timeout).
Failures: Orthanc or Triton down is retried; nothing is shown before every batch is
scored, and every write is keyed, so a retry or rerun replaces and never duplicates.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task

from pipelines.orchestration.controls import default_args, screening_deadline
from pipelines.orchestration.tasks import screening_schedule

SCHEDULE, START = screening_schedule()


@dag(
    dag_id="screen_daily_mammograms",
    schedule=SCHEDULE,
    start_date=START,  # the cron runs in local time
    catchup=True,  # missed nights run in order, one at a time
    max_active_runs=1,
    default_args=default_args("radiology-it"),
    deadline=screening_deadline(),  # alert when the night is not finished by 07:00 local
    tags=["radflow", "mammo", "screening"],
    params={"study_date": Param("", type="string", description="YYYY-MM-DD; empty = previous day"),
            "task": Param("mammo", type="string", description="screening task (tasks.yaml)")},
    doc_md=__doc__,
)
def screen_daily_mammograms() -> None:
    @task
    def pick_study_date() -> str:
        from pipelines.orchestration.tasks import study_date_of

        return study_date_of(get_current_context())

    @task(pool="pacs", queue="pacs")
    def retrieve_from_pacs(study_date: str) -> dict:
        from pipelines.gateway import retrieve
        from pipelines.orchestration.tasks import call_stage

        return call_stage(retrieve.run, study_date=study_date, task=get_current_context()["params"]["task"])

    @task(pool="pacs", queue="pacs")
    def plan_screening(study_date: str, retrieved: dict) -> list[dict]:
        from pipelines.orchestration.tasks import call_stage
        from pipelines.screening import batches

        night = call_stage(batches.plan, study_date=study_date, task=get_current_context()["params"]["task"])
        return night["batches"]  # one reference per batch: task, date, batch, plan_id, exam pseudonyms

    @task(pool="pacs", queue="default")
    def score_batch(batch: dict) -> dict:
        from pipelines.orchestration.tasks import call_stage
        from pipelines.screening import batches

        return call_stage(batches.score_batch, **batch)

    @task(pool="pacs", queue="pacs", trigger_rule="none_failed")  # runs when the night has no batch
    def merge_screening(study_date: str) -> dict:
        from pipelines.orchestration.tasks import call_stage
        from pipelines.screening import merge

        return call_stage(merge.merge, study_date=study_date, task=get_current_context()["params"]["task"],
                          notify=False)

    @task(pool="pacs", queue="pacs")
    def deliver_results(screen: dict) -> dict:
        from pipelines.gateway import deliver
        from pipelines.orchestration.tasks import call_stage

        return call_stage(deliver.run, study_date=screen["date"], task=screen["task"])

    @task
    def notify_reading_room(screen: dict) -> dict:
        from pipelines.orchestration.mail import notify_night

        return notify_night(screen["worklist"])

    @task(pool="pacs", queue="pacs")
    def catch_up_late_arrivals(screen: dict) -> list[dict]:
        from pipelines.gateway import deliver
        from pipelines.orchestration.tasks import call_stage
        from pipelines.screening import late, run

        caught = []
        for night in late.late_nights(screen["date"], screen["task"]):
            result = call_stage(run.night, study_date=night.date, task=screen["task"], notify=False)
            call_stage(deliver.run, study_date=night.date, task=screen["task"])
            caught.append({"date": night.date, "late": night.late, "exams": result["exams"],
                           "flagged": result["flagged"], "worklist": result["worklist"]})
        return caught

    @task
    def notify_late_arrivals(caught: list[dict]) -> list[dict]:
        from pipelines.orchestration.mail import notify_night

        return [notify_night(night["worklist"]) for night in caught]

    @task(queue="pacs")
    def apply_retention(delivered: dict) -> dict:
        from pipelines.gateway import purge
        from pipelines.orchestration.tasks import call_stage

        return call_stage(purge.run)

    study_date = pick_study_date()
    scored = score_batch.expand(batch=plan_screening(study_date, retrieve_from_pacs(study_date)))
    screened = merge_screening(study_date)
    scored >> screened
    notify_reading_room(screened)
    delivered = deliver_results(screened)
    apply_retention(delivered)
    caught = catch_up_late_arrivals(screened)
    delivered >> caught  # tonight's results reach the PACS and the RIS first
    notify_late_arrivals(caught)

screen_daily_mammograms()
