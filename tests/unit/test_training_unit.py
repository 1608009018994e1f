"""Training data splits, exam-level scoring, the model's contract and the ONNX export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.domain import SCREENING_VIEWS
from pipelines.errors import NoTrainingData
from pipelines.training.data import exam_scores, split_patients


def manifest(patients: int, exams_per_patient: int = 2, positive_every: int = 3) -> pd.DataFrame:
    """Labelled views: every `positive_every`-th exam has a positive (left) breast."""
    rows = []
    n = 0
    for p in range(patients):
        for e in range(exams_per_patient):
            positive = n % positive_every == 0
            n += 1
            for view in SCREENING_VIEWS:
                rows.append({"patient_id": f"pt-{p:03d}", "exam_id": f"ex-{p:03d}-{e}",
                             "view": view, "label": int(positive and view.startswith("L"))})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seed", [0, 1, 42])
def test_split_keeps_every_patient_in_one_split_and_loses_nothing(seed: int) -> None:
    frame = manifest(patients=30)
    parts = split_patients(frame, val=0.15, test=0.2, seed=seed)
    assert set(parts) == {"train", "val", "test"}
    owners: dict[str, str] = {}
    for name, part in parts.items():
        for patient in part.patient_id.unique():
            assert patient not in owners, f"{patient} in {owners.get(patient)} and {name}"
            owners[patient] = name
    assert sum(len(p) for p in parts.values()) == len(frame)
    assert set(owners) == set(frame.patient_id)


def test_every_split_holds_positive_and_negative_exams() -> None:
    parts = split_patients(manifest(patients=30), val=0.15, test=0.2, seed=3)
    for name, part in parts.items():
        exam_labels = part.groupby("exam_id").label.max()
        assert set(exam_labels) == {0, 1}, name
        assert len(exam_labels) >= 3, name


def test_the_split_is_reproducible_from_its_seed() -> None:
    frame = manifest(patients=30)
    a = split_patients(frame, 0.15, 0.2, seed=5)
    b = split_patients(frame, 0.15, 0.2, seed=5)
    for name in a:
        assert sorted(a[name].patient_id.unique()) == sorted(b[name].patient_id.unique())


def test_a_split_without_positives_is_impossible_and_says_why() -> None:
    frame = manifest(patients=30)
    frame["label"] = 0
    with pytest.raises(NoTrainingData, match=r"cannot split 60 labelled exams of 30 patients"):
        split_patients(frame, 0.15, 0.2, seed=0)


def test_too_few_patients_is_no_training_data() -> None:
    with pytest.raises(NoTrainingData, match="both classes"):
        split_patients(manifest(patients=4), 0.15, 0.2, seed=0)


def test_exam_score_is_the_max_over_its_views() -> None:
    scores = np.array([0.1, 0.9, 0.2, 0.3, 0.05, 0.04, 0.02, 0.01], dtype=np.float32)
    exams = np.array(["ex-b"] * 4 + ["ex-a"] * 4)
    labels = np.array([0, 1, 0, 0, 0, 0, 0, 0], dtype=np.float32)
    exam_score, exam_label = exam_scores(scores, exams, labels)
    # Sorted by exam id, aligned with each other.
    np.testing.assert_allclose(exam_score, [0.05, 0.9])
    np.testing.assert_array_equal(exam_label, [0, 1])


def test_exam_scores_keep_interleaved_views_together() -> None:
    exams = np.array(["ex-1", "ex-2", "ex-1", "ex-2"])
    exam_score, exam_label = exam_scores(np.array([0.2, 0.7, 0.6, 0.1]), exams,
                                         np.array([0, 0, 1, 0]))
    np.testing.assert_allclose(exam_score, [0.6, 0.7])
    np.testing.assert_array_equal(exam_label, [1, 0])


def test_the_model_gives_one_probability_per_view() -> None:
    import torch

    from pipelines.training.model import ViewClassifier

    torch.manual_seed(0)
    model = ViewClassifier(width=4).eval()
    x = torch.rand(3, 1, 32, 24)
    with torch.no_grad():
        out = model(x)
        logits = model.logits(x)
    assert tuple(out.shape) == (3, 1)
    assert bool(((out > 0) & (out < 1)).all())
    torch.testing.assert_close(out, torch.sigmoid(logits))


def test_onnx_export_matches_pytorch_and_takes_any_batch_size(tmp_path: Path) -> None:
    import onnxruntime as ort
    import torch

    from pipelines.serving.onnx_export import PARITY_TOLERANCE, export, sha256
    from pipelines.training.model import ViewClassifier

    torch.manual_seed(0)
    model = ViewClassifier()
    example = np.random.default_rng(0).random((2, 1, 32, 24), dtype=np.float32)
    path = tmp_path / "model.onnx"
    diff = export(model, example, path)
    assert 0.0 <= diff <= PARITY_TOLERANCE <= 1e-4
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    assert [o.name for o in session.get_outputs()] == ["probability"]
    batch = np.random.default_rng(1).random((5, 1, 32, 24), dtype=np.float32)
    got = session.run(None, {"image": batch})[0]
    with torch.no_grad():
        want = model.eval()(torch.from_numpy(batch)).numpy()
    assert got.shape == (5, 1)
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert len(sha256(path)) == 64 and sha256(path) == sha256(path)
