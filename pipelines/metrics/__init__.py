"""How a model is measured: exam-level metrics with confidence intervals, calibration,
subgroups and figures on a held-out split, logged to MLflow.

`log_evaluation` is the one call for a stage that has a model and an active MLflow run
(`radflow evaluate`, training's test split); `write_report` does the same from scores.
"""

from pipelines.metrics.report import flat_metrics, log_evaluation, write_report

__all__ = ["flat_metrics", "log_evaluation", "write_report"]
