"""
### Promote and deploy the mammography model

Manual only. Needs the `approver` param: the named person who signs off. Moves alias
`champion` to the challenger (recorded in the audit table and as MLflow tags), exports it
to ONNX and loads it into Triton, checking readiness and one inference.
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
        "reason": Param("", type="string", description="why this version should serve"),
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
