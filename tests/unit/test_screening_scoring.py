"""Screening task definitions and the scoring rules: discounted views, suspicion, flags."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from pipelines import tasks
from pipelines.domain import QC_CODES, QcFlag, ViewQc
from pipelines.errors import PermanentError
from pipelines.scoring import suspicion_cuts
from pipelines.screening import suspicion as scoring
from pipelines.screening.results import ExamRow, ViewRow, device_rates

MAMMO = tasks.load()["mammo"]
CHEST = tasks.load()["cxr-nodule"]


def test_the_builtin_tasks_define_mammography_and_a_chest_xray_task() -> None:
    assert (MAMMO.modality, MAMMO.views, MAMMO.aggregation) == (
        "MG", ("R-CC", "L-CC", "R-MLO", "L-MLO"), "breast_mean_exam_max")
    assert (CHEST.modality, CHEST.body_part, CHEST.views, CHEST.triton_model) == (
        "DX", "CHEST", ("PA",), "cxr_nodule")
    assert (MAMMO.dataset, MAMMO.policy, MAMMO.monitoring_reference) == ("mammo", "mammo-screening", "val")
    assert (CHEST.dataset, CHEST.policy, CHEST.registered_model) == ("cxr-nodule", "cxr-nodule", "cxr-nodule")


def test_every_task_names_a_policy_the_registry_has() -> None:
    from pipelines.registry.policy import load_policy

    for task in tasks.load().values():
        assert load_policy(task.policy).promotion.subgroups


def test_an_invalid_task_is_refused_naming_it(tmp_path: Path) -> None:
    bad = {"tasks": {"knee": {"modality": "CR", "body_part": "KNEE", "views": ["AP"],
                              "view_key": "position", "preprocessing": "radiograph",
                              "registered_model": "knee", "triton_model": "knee",
                              "aggregation": "breast_mean_exam_max"}}}
    with pytest.raises(PermanentError, match="task 'knee' is invalid"):
        tasks.parse(bad, "tasks.yaml")
    with pytest.raises(PermanentError, match="non-empty `tasks:`"):
        tasks.parse({"task": {}}, "tasks.yaml")


def task_with(**changes: object) -> dict[str, object]:
    body = {"modality": "MG", "body_part": "BREAST", "views": ["R-CC", "L-CC", "R-MLO", "L-MLO"],
            "view_key": "laterality-position", "preprocessing": "mammogram",
            "registered_model": "mammo-screening", "policy": "mammo-screening", "dataset": "mammo",
            "manifest_contract": "mammo_manifest", "dataset_contract": "mammo_dataset",
            "triton_model": "mammo_screening", "aggregation": "breast_mean_exam_max", "qc": "mammography"}
    return {"tasks": {"site-b": {**body, **changes}}}


def test_ingest_needs_one_task_per_modality_and_a_label_source_that_fits() -> None:
    two = task_with()
    two["tasks"]["site-c"] = dict(two["tasks"]["site-b"])  # type: ignore[index]
    with pytest.raises(PermanentError, match="'site-b' and 'site-c' both take modality MG"):
        tasks.parse(two, "t")
    with pytest.raises(PermanentError, match="labels: findings needs finding_terms"):
        tasks.parse(task_with(labels="findings"), "t")
    chest = {"views": ["PA"], "view_key": "position", "aggregation": "max", "qc": "none"}
    with pytest.raises(PermanentError, match="labels: birads labels breasts"):
        tasks.parse(task_with(**chest), "t")
    found = tasks.parse(task_with(**chest, labels="findings", finding_terms=["nodule"]), "t")["site-b"]
    assert found.finding_terms == ("nodule",)


def test_a_task_overrides_qc_limits_and_keeps_the_other_defaults() -> None:
    from pipelines.imaging.qc import QcLimits

    task = tasks.parse(task_with(qc_limits={"max_grid_peak": 95, "min_text_glyphs": 8}), "t")["site-b"]
    assert task.limits() == QcLimits(max_grid_peak=95.0, min_text_glyphs=8)
    assert isinstance(task.limits().min_text_glyphs, int)
    assert MAMMO.limits() == QcLimits()


@pytest.mark.parametrize(("limits", "qc", "named"), [
    ({"max_grid_peek": 90}, "mammography", "unknown qc_limits ['max_grid_peek']"),
    ({"min_text_glyphs": 6.5}, "mammography", "min_text_glyphs counts, so it must be whole"),
    ({"max_grid_peak": 90}, "none", "the task runs no QC"),
])
def test_bad_qc_limits_are_refused_when_the_file_is_read(limits: dict[str, float], qc: str,
                                                         named: str) -> None:
    with pytest.raises(PermanentError, match=f"(?s)task 'site-b' is invalid.*{re.escape(named)}"):
        tasks.parse(task_with(qc_limits=limits, qc=qc), "tasks.yaml")


def test_the_nightly_qc_flags_at_the_task_limits() -> None:
    from dicom_builders import synthetic_dataset

    from pipelines.screening.collect import prepare_view

    ds = synthetic_dataset("north", 1003, "L-CC", "")
    _, default = prepare_view(ds, "L-CC", MAMMO, 32, 24, decode_timeout_s=60.0)
    strict = tasks.parse(task_with(qc_limits={"max_grid_peak": 0}), "t")["site-b"]
    _, flagged = prepare_view(ds, "L-CC", strict, 32, 24, decode_timeout_s=60.0)
    assert "grid_lines" not in {f.code for f in default.flags}
    assert "grid_lines" in {f.code for f in flagged.flags}
    assert flagged.features["grid_peak"] == default.features["grid_peak"]


def test_an_unknown_task_lists_the_known_ones(isolated_settings: Path) -> None:
    with pytest.raises(PermanentError, match="defined are cxr-nodule, mammo"):
        tasks.get_task("knee")


def test_flagged_views_are_left_out_of_the_exam_score() -> None:
    views = {"R-CC": 0.9, "R-MLO": 0.8, "L-CC": 0.1, "L-MLO": 0.2}
    assert scoring.score_without(MAMMO, views, []) == (pytest.approx(0.85), False)
    # the right breast is then its MLO alone; the exam is still the higher breast
    assert scoring.score_without(MAMMO, views, ["R-CC"]) == (pytest.approx(0.8), False)
    assert scoring.score_without(MAMMO, views, ["R-CC", "R-MLO"]) == (pytest.approx(0.15), False)
    # every view flagged: scored on all of them, and said so
    assert scoring.score_without(MAMMO, views, list(views)) == (pytest.approx(0.85), True)
    assert scoring.score_without(CHEST, {"PA": 0.4}, []) == (0.4, False)


def test_suspicion_follows_the_validation_deciles() -> None:
    validation = np.linspace(0.0, 1.0, 101)
    cuts = suspicion_cuts(validation)
    assert len(cuts) == 9 and cuts == sorted(cuts)
    assert [scoring.suspicion(s, cuts) for s in (0.0, 0.05, 0.15, 0.5, 0.95, 1.0)] == [1, 1, 2, 6, 10, 10]
    levels = [scoring.suspicion(s, cuts) for s in np.random.default_rng(0).random(10_000)]
    assert np.bincount(levels)[1:].min() > 800  # about a tenth of a like population each


def test_a_version_without_calibration_is_refused() -> None:
    with pytest.raises(PermanentError, match="retrain"):
        scoring.parse_cuts("")
    with pytest.raises(PermanentError, match="9 ascending"):
        scoring.parse_cuts(json.dumps([0.5, 0.1]))
    assert scoring.parse_cuts(json.dumps([i / 10 for i in range(1, 10)]))[0] == 0.1


def test_flags_by_operating_point_or_by_reading_capacity() -> None:
    scores = np.array([0.2, 0.9, 0.55, 0.7, 0.1])
    flagged, why = scoring.flags(scores, 0.6, None)
    assert flagged.tolist() == [False, True, False, True, False] and why == "operating point"
    flagged, why = scoring.flags(scores, 0.6, 3)
    assert flagged.tolist() == [False, True, True, True, False] and why == "reading capacity (top 3)"
    assert scoring.flags(scores, 0.6, 0)[0].sum() == 0


def test_artifact_rates_are_counted_per_device_and_code() -> None:
    flag = QcFlag("motion_blur", "motion blur: 0.5 below 0.8", 0.5)
    views = (ViewRow("R-CC", 0.1, ViewQc("R-CC", {}, (flag,)), "GE Senographe"),
             ViewRow("L-CC", 0.1, ViewQc("L-CC", {}), "GE Senographe"))
    other = (ViewRow("R-CC", 0.1, ViewQc("R-CC", {}), "HOLOGIC Selenia"),)
    rows = device_rates("2026-10-12", [ExamRow("a", 0.1, 1, False, views, False),
                                       ExamRow("b", 0.1, 1, False, other, False)])
    assert len(rows) == 2 * len(QC_CODES)  # every code on record, zeros included
    blur = next(r for r in rows if r["device"] == "GE Senographe" and r["code"] == "motion_blur")
    assert (blur["views"], blur["flagged"], blur["rate"]) == (2, 1, 0.5)
    assert all(r["flagged"] == 0 for r in rows if r["device"] == "HOLOGIC Selenia")
