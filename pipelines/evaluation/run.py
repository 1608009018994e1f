"""`radflow evaluate`: a registered model (by alias) on a frozen dataset split, in MLflow.

The numbers are exam-level (breast = mean of its views, exam = max of its breasts, as
in training and screening), computed and drawn by `pipelines.evaluation`: AUC with a
bootstrap confidence interval, sensitivity and specificity at the operating point chosen
on validation, specificity at sensitivity 0.90, calibration, AUC by manufacturer and by
density, ROC, reliability and heatmap figures. They are logged as a run tagged with the
model version and the dataset version (DVC hash), and the headline numbers are copied
onto the model version as `eval_<split>_*` tags for promotion.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from pipelines.config import get_settings
from pipelines.domain import StageResult
from pipelines.errors import NoTrainingData
from pipelines.evaluation.comparison import three_way
from pipelines.frozen import load_split
from pipelines.metrics import comparison
from pipelines.modelfiles.inference import view_scores
from pipelines.scoring import exam_table
from pipelines.tasks import TaskDefinition, get_task

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)
# Report numbers copied onto the model version as eval_<split>_<key> tags.
EVAL_TAGS = ("auc", "sensitivity", "specificity", "auc_ci_low", "auc_ci_high", "specificity_at_sens90",
             "ece")


@dataclasses.dataclass(frozen=True)
class EvaluationResult(StageResult):
    run_id: str
    model_name: str
    model_version: str
    alias: str
    dataset_version: str
    split: str
    exams: int
    auc: float
    sensitivity: float
    specificity: float
    operating_point: float
    operating_point_source: str  # "model_version_tag" or "validation"
    positive_exams: int
    auc_ci_low: float
    auc_ci_high: float
    specificity_at_sens90: float
    ece: float
    report_dir: str
    # the same split scored by the base as is, this version and the champion
    comparison: list[comparison.ComparedModel] = dataclasses.field(default_factory=list)
    not_scored: list[dict[str, str]] = dataclasses.field(default_factory=list)


def operating_point(version: ModelVersion, model: Any, task: TaskDefinition) -> tuple[float, str]:
    """The exam-score threshold chosen on validation, and where it came from: the model
    version's `operating_point` tag (set by training), else chosen here on the val split of
    the task's dataset at the task's training target sensitivity."""
    from pipelines.metrics.binary import threshold_for_sensitivity
    from pipelines.params import load_params

    tagged = (version.tags or {}).get("operating_point")
    if tagged is not None:
        return float(tagged), "model_version_tag"
    rows, images, _ = load_split(task.dataset, "val")
    exams = exam_table(rows, view_scores(model, images), task.aggregation).dropna(subset=["label"])
    if exams.label.nunique() != 2:
        raise NoTrainingData(f"the val split of {task.dataset!r} has {len(exams)} labelled exams, not of "
                             "both classes: cannot choose an operating point")
    target = load_params(task=task.name).target_sensitivity
    return threshold_for_sensitivity(exams.label, exams.score, target), "validation"


def run(alias: str = "challenger", split: str = "test", task: str = "mammo") -> EvaluationResult:
    """Evaluate `models:/<task's registered model>@<alias>` on `split` of the task's frozen dataset."""
    import mlflow
    from pipelines.metrics import log_evaluation
    from pipelines.tracking import mlflow_client, model_uri, require_version

    s = get_settings()
    definition = get_task(task)
    dataset, name = definition.dataset, definition.registered_model
    rows, images, data_version = load_split(dataset, split)
    client = mlflow_client()
    version = require_version(client, name, alias)
    model = mlflow.pytorch.load_model(model_uri(name, alias), map_location="cpu")
    threshold, source = operating_point(version, model, definition)
    mlflow.set_experiment(s.mlflow_experiment)
    with mlflow.start_run(run_name=f"evaluate-{alias}-{split}") as active:
        mlflow.set_tags({"stage": "evaluate", "dataset_version": data_version, "split": split,
                         "model_version": str(version.version), "alias": alias,
                         "operating_point_source": source})
        folder = s.state / "evaluation" / active.info.run_id / split
        logged = log_evaluation(model, rows, images, threshold, split=split, folder=folder,
                                aggregation=definition.aggregation)
        compared, not_scored = three_way(client, version, model, rows, images, definition, threshold)
        mlflow.log_dict({"split": split, "dataset_version": data_version,
                         "models": comparison.as_json(compared), "not_scored": not_scored},
                        f"comparison/{split}.json")
    m = {key.removeprefix(f"{split}_"): value for key, value in logged.items()}
    for key in EVAL_TAGS:
        client.set_model_version_tag(name, str(version.version),
                                     f"eval_{split}_{key}", f"{m[key]:.4f}")
    client.set_model_version_tag(name, str(version.version), "eval_dataset_version",
                                 data_version)
    for row in compared:  # e.g. eval_test_auc_base, eval_test_auc_champion
        if row.role in (comparison.BASE, comparison.CHAMPION):
            client.set_model_version_tag(name, str(version.version),
                                         f"eval_{split}_auc_{row.role.split()[0]}", f"{row.auc:.4f}")
    log.info("evaluate: %s@%s on %s %s: AUC %.3f (%.3f-%.3f)", name, alias, dataset,
             split, m["auc"], m["auc_ci_low"], m["auc_ci_high"])
    return EvaluationResult(
        run_id=active.info.run_id, model_name=name, model_version=str(version.version),
        alias=alias, dataset_version=data_version, split=split, exams=int(m["exams"]),
        auc=round(m["auc"], 4), sensitivity=round(m["sensitivity"], 4),
        specificity=round(m["specificity"], 4), operating_point=threshold,
        operating_point_source=source, positive_exams=int(m["positive_exams"]),
        auc_ci_low=round(m["auc_ci_low"], 4), auc_ci_high=round(m["auc_ci_high"], 4),
        specificity_at_sens90=round(m["specificity_at_sens90"], 4), ece=round(m["ece"], 4),
        report_dir=str(folder), comparison=compared, not_scored=not_scored)
