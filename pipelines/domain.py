"""Frozen, PHI-free references passed between stages (and printed by the CLI as JSON).

Exam ids are pseudonyms from the pseudonym table; nothing here may hold a name, a patient
id, an accession number or an original UID.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

SCREENING_VIEWS: tuple[str, ...] = ("R-CC", "L-CC", "R-MLO", "L-MLO")


class Laterality(enum.StrEnum):
    RIGHT = "R"
    LEFT = "L"


class ViewPosition(enum.StrEnum):
    CC = "CC"
    MLO = "MLO"


@dataclasses.dataclass(frozen=True)
class StageResult:
    """Base of every stage's result: `as_json()` is what `--json` prints."""

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Quarantined:
    """One item set aside with the reason; `id` is a pseudonym or an Orthanc id."""

    id: str
    reason: str


@dataclasses.dataclass(frozen=True)
class SynthResult(StageResult):
    exams: int
    instances: int
    positives: int
    site: str
    study_date: str
    stored: int
    truth_file: str


@dataclasses.dataclass(frozen=True)
class IngestResult(StageResult):
    new_studies: int
    ingested_exams: int
    quarantined: list[Quarantined]
    watermark: int
    previous_watermark: int
    manifest: str
    images: int


@dataclasses.dataclass(frozen=True)
class ValidationResult(StageResult):
    suite: str
    success: bool
    rows: int
    evaluated_expectations: int
    failed: list[dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class TrainResult(StageResult):
    run_id: str
    model_name: str
    model_version: str
    alias: str
    test_auc: float
    val_auc: float
    operating_point: float
    train_exams: int
    val_exams: int
    test_exams: int
    epochs: int
    base_model: str = ""  # the MLflow URI or weights file fine-tuned ("" from scratch)
    test_auc_ci: tuple[float, float] = (0.0, 0.0)  # 95% bootstrap interval of test_auc


@dataclasses.dataclass(frozen=True)
class GateCheck:
    """One check of the promotion gate: it passed if `value` is within `limit`.

    `value` and `limit` are None for checks without a number (no champion to compare).
    """

    name: str
    value: float | None
    limit: float | None
    passed: bool
    detail: str


@dataclasses.dataclass(frozen=True)
class SkippedSubgroup:
    """A subgroup the gate could not compare (too few exams, one class), with the reason."""

    name: str
    exams: int
    reason: str


@dataclasses.dataclass(frozen=True)
class PromotionResult(StageResult):
    """`outcome` is "promoted", or "unchanged" when `version` already was the champion."""

    model_name: str
    version: str
    alias: str
    approver: str
    reason: str
    previous_version: str | None
    outcome: str
    checks: list[GateCheck]
    skipped_subgroups: list[SkippedSubgroup]
    dataset_version: str | None
    report_run_id: str | None
    audit_id: int | None
    approver_name: str = ""  # the approver login's display name (policy), for people to read
    approved_via: str = ""  # airflow | mlflow: which login system authenticated the approver


@dataclasses.dataclass(frozen=True)
class RollbackResult(StageResult):
    """Alias `champion` moved from `rolled_back_from` back to `version`."""

    model_name: str
    version: str
    alias: str
    approver: str
    reason: str
    rolled_back_from: str
    audit_id: int
    approver_name: str = ""
    approved_via: str = ""


@dataclasses.dataclass(frozen=True)
class DeployResult(StageResult):
    model_name: str
    version: str
    triton_model: str
    triton_version: int
    repository: str
    ready: bool
    smoke_probability: float
    slot: str = "champion"
    name: str = "mammo"
    previous_version: int | None = None  # still on disk, for `radflow deploy --rollback`
    sha256: str = ""
    action: str = "deployed"  # deployed | rolled_back


@dataclasses.dataclass(frozen=True)
class UndeployResult(StageResult):
    slot: str
    name: str
    triton_model: str
    unloaded: list[str]


@dataclasses.dataclass(frozen=True)
class ShadowAgreement:
    model_version: str
    exams: int
    score_correlation: float | None  # Pearson r of exam scores (None under 2 exams or constant)
    rank_correlation: float | None  # Spearman rho
    flag_agreement: float | None  # share of exams both models flag or both leave unflagged
    flagged: int  # exams the shadow would have flagged at its own operating point
    error: str | None = None  # why the shadow could not be scored (the night still completes)


@dataclasses.dataclass(frozen=True)
class MonitorResult(StageResult):
    """One monitored night: its drift verdict against the reference and the alert decision."""

    date: str
    task: str
    model_name: str
    model_version: str
    exams: int
    reference_exams: int
    judged: bool  # False: too few exams to judge (RADFLOW_DRIFT_MIN_EXAMS)
    tests: int
    drifted_tests: int
    drifted_families: list[str]
    sustained_families: list[str]
    alert: bool  # sustained drift starts tonight: notify and retrain (asset mammo_data_drift)
    alert_reason: str
    integrity_ok: bool | None  # the day's model-file integrity check (None: not run yet)
    report: str
    notified: bool = False
    # the champion's realised sensitivity (outcomes) below the policy's minimum, and why or why not
    outcomes_alert: bool = False
    outcomes_reason: str = ""


@dataclasses.dataclass(frozen=True)
class IntegrityResult(StageResult):
    date: str
    ok: bool
    counts: dict[str, int]
    problems: list[dict[str, str]]  # triton_model, version, status, detail
    error: str | None = None  # set when there are problems: the CLI then exits 1


@dataclasses.dataclass(frozen=True)
class ScreenResult(StageResult):
    date: str
    exams: int
    flagged: int
    worklist: str
    model_version: str
    views_scored: int
    quarantined: list[Quarantined]
    # the shadow model's agreement with the champion on these exams; None when no shadow
    # is deployed (its scores go to shadow_results, never to the worklist)
    shadow: ShadowAgreement | None = None
    task: str = "mammo"
    run_id: str = ""
    flag_reason: str = ""  # "operating point" or "reading capacity (top k)"
    views_discounted: int = 0  # views left out of exam scores for their QC flags
    stage_seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    write_back: dict[str, int] = dataclasses.field(default_factory=dict)  # SR / SC objects stored, replaced
    notified: int = 0  # flagged exams the notification listed (0: none configured or none flagged)
    # pull mode: studies the PACS listed for the night that the gateway could not retrieve
    not_retrieved: list[Quarantined] = dataclasses.field(default_factory=list)
    batches: int = 0  # scoring batches the night was cut into (RADFLOW_SCREENING_BATCH_EXAMS)
    plan_id: str = ""
    # studies of the date still arriving when the night was planned: left out, screened by
    # the next night's catch-up (pipelines/screening/late.py)
    arriving: int = 0
    # earlier nights screened again, after this one, for their late arrivals (one-process runs)
    caught_up: list[ScreenResult] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class ScreeningBatch(StageResult):
    """One batch of a night's screening plan, as a reference: the exams' pseudonyms in plan
    order (the Orthanc ids they stand for stay in the plan's database row)."""

    task: str
    date: str
    batch: int  # 0-based index in the plan
    plan_id: str
    exams: list[str]


@dataclasses.dataclass(frozen=True)
class ScreeningPlan(StageResult):
    """A night cut into scoring batches (pipelines/screening/batches.py)."""

    task: str
    date: str
    plan_id: str
    model_version: str
    exams: int
    batch_exams: int
    batches: list[ScreeningBatch]
    arriving: int = 0  # studies still arriving, left out for the next night's catch-up


@dataclasses.dataclass(frozen=True)
class BatchResult(StageResult):
    """One scored batch, staged for the night's merge (nothing shown to anyone yet)."""

    task: str
    date: str
    batch: int
    plan_id: str
    exams: int  # scored
    views_scored: int
    quarantined: list[Quarantined]
    stage_seconds: dict[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class QcFlag:
    """One image-quality problem found in a view, with the feature that tripped it.

    `code` is one of QC_CODES; `reason` says what was measured against which limit, in
    words a radiologist reads on the worklist (never an identifier).
    """

    code: str
    reason: str
    value: float


QC_CODES = ("foreign_object", "motion_blur", "grid_lines", "burned_in_text", "clipped_exposure",
            "missing_pectoral")


@dataclasses.dataclass(frozen=True)
class ViewQc:
    """The QC of one view: its measured features and its flags (empty = clean).

    A flagged view is discounted from the exam score; the reasons travel with the result.
    """

    view: str
    features: dict[str, float]
    flags: tuple[QcFlag, ...] = ()

    @property
    def discounted(self) -> bool:
        return bool(self.flags)
