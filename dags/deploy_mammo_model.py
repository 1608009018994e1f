"""
### Promote and deploy the mammography model

Manual only. Trigger it logged in to Airflow, with the `reason` param: the approver is your
login (the run's triggering user, as Airflow authenticated it), and it must be listed in the
promotion policy's approvers (mlflow/registered_models.yaml), or the attempt is refused and
audited. `promote_challenger` runs the promotion gate: the challenger against the champion
on the same frozen test set (paired bootstrap; AUC, sensitivity and subgroup margins from
the policy). If a check fails the task fails with the check named and nothing is deployed;
the refused attempt is still audited. If it passes, alias `champion` moves (audit table with
your login and display name, MLflow tags, promotion report), then `deploy_champion` exports
it to ONNX and loads it into Triton, checking readiness and one inference. Deploy serves
only the audited champion: an alias moved in MLflow by hand is refused.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from pipelines.orchestration.assets import CHAMPION_MAMMO_MODEL
from pipelines.orchestration.controls import default_args


@dag(
    dag_id="deploy_mammo_model",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={**default_args("ml-team"), "retries": 0},
    tags=["radflow", "mammo", "deployment"],
    params={
        "reason": Param(None, type="string", minLength=1,
                        description="why this version should serve (required, audited)"),
    },
    doc_md=__doc__,
)
def deploy_mammo_model() -> None:
    @task
    def promote_challenger() -> dict:
        from pipelines.orchestration.tasks import call_stage
        from pipelines.registry import promote

        ctx = get_current_context()
        return call_stage(promote.run, reason=ctx["params"]["reason"], via="airflow",
                          approver=ctx["dag_run"].triggering_user_name)

    @task(outlets=[CHAMPION_MAMMO_MODEL])
    def deploy_champion(promoted: dict) -> dict:
        from pipelines.orchestration.tasks import call_stage
        from pipelines.serving import deploy

        return call_stage(deploy.run)

    deploy_champion(promote_challenger())


deploy_mammo_model()
