"""
### Promote and deploy the mammography model

Manual only. Needs the `approver` (the named person who signs off) and `reason` params.
`promote_challenger` runs the promotion gate: the challenger against the champion on the
same frozen test set (paired bootstrap; AUC, sensitivity and subgroup margins from
`mlflow/registered_models.yaml`). If a check fails the task fails with the check named
and nothing is deployed; the refused attempt is still audited. If it passes, alias
`champion` moves (audit table, MLflow tags, promotion report), then `deploy_champion`
exports it to ONNX and loads it into Triton, checking readiness and one inference.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from pipelines.orchestration.assets import CHAMPION_MAMMO_MODEL


@dag(
    dag_id="deploy_mammo_model",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "ml-team", "retries": 0},
    tags=["radflow", "mammo", "deployment"],
    params={
        "approver": Param(None, type="string", minLength=1,
                          description="named human approving the promotion (required)"),
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

        params = get_current_context()["params"]
        return call_stage(promote.run, approver=params["approver"], reason=params["reason"])

    @task(outlets=[CHAMPION_MAMMO_MODEL])
    def deploy_champion(promoted: dict) -> dict:
        from pipelines.orchestration.tasks import call_stage
        from pipelines.serving import deploy

        return call_stage(deploy.run)

    deploy_champion(promote_challenger())


deploy_mammo_model()
