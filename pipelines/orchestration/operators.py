"""radflow's own Airflow operator: the wait for the training window."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from airflow.sdk import BaseOperator

log = logging.getLogger(__name__)
MANUAL = "manual"


class TrainingWindow(BaseOperator):
    """Holds a retraining started by its cron or by drift until clinical hours end.

    Inside RADFLOW_CLINICAL_HOURS (on RADFLOW_CLINICAL_DAYS, hospital time zone) the task
    defers to the triggerer until the hours end, holding no worker slot; outside them, or
    for a run someone triggered by hand, it passes at once. Returns {"waited", "until",
    "run_type"}.
    """

    ui_color = "#f4e3b5"

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.providers.standard.triggers.temporal import DateTimeTrigger

        from pipelines.orchestration.controls import clinical_hours_end

        kind = getattr(context["dag_run"], "run_type", "")
        run_type = str(getattr(kind, "value", kind))
        if run_type == MANUAL:
            return {"waited": False, "until": None, "run_type": run_type}
        end = clinical_hours_end(dt.datetime.now(dt.UTC))
        if end is None:
            return {"waited": False, "until": None, "run_type": run_type}
        log.info("clinical hours until %s: retraining (%s) waits", end.isoformat(), run_type)
        self.defer(trigger=DateTimeTrigger(moment=end), method_name="resume",
                   kwargs={"until": end.isoformat(), "run_type": run_type})
        raise AssertionError("unreachable: defer() raises")  # pragma: no cover

    def resume(self, context: Any, event: Any = None, until: str = "", run_type: str = "") -> dict[str, Any]:
        log.info("clinical hours over (%s): retraining starts", until)
        return {"waited": True, "until": until, "run_type": run_type}
