"""Training data splits, exam-level scoring, the model's contract and the ONNX export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.domain import SCREENING_VIEWS
from pipelines.errors import NoTrainingData
from pipelines.training.data import split_patients


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


def test_exam_score_is_the_higher_breast_mean_of_its_views() -> None:
    from pipelines.scoring import exam_table

    rows = pd.DataFrame({"exam_id": ["ex-b"] * 4 + ["ex-a"] * 4,
                         "laterality": ["R", "R", "L", "L"] * 2,
                         "label": [0, 0, 1, 1, 0, 0, 0, 0],
                         "manufacturer": ["GE"] * 4 + ["SIEMENS"] * 4})
    scores = np.array([0.1, 0.3, 0.9, 0.5, 0.05, 0.04, 0.02, 0.01])
    exams = exam_table(rows, scores)
    # Sorted by exam id; breast = mean of CC and MLO, exam = the higher breast.
    assert exams.exam_id.tolist() == ["ex-a", "ex-b"]
    np.testing.assert_allclose(exams.score, [0.045, 0.7])
    np.testing.assert_allclose(exams.score_R, [0.045, 0.2])
    np.testing.assert_array_equal(exams.label, [0, 1])
    assert exams.manufacturer.tolist() == ["SIEMENS", "GE"]


def test_exam_scores_keep_interleaved_views_together() -> None:
    from pipelines.scoring import exam_table

    rows = pd.DataFrame({"exam_id": ["ex-1", "ex-2", "ex-1", "ex-2"], "laterality": ["L"] * 4,
                         "label": [0, 0, 1, 0]})
    exams = exam_table(rows, np.array([0.2, 0.7, 0.6, 0.1]))
    np.testing.assert_allclose(exams.score, [0.4, 0.4])
    np.testing.assert_array_equal(exams.label, [1, 0])


def test_the_model_gives_one_probability_and_one_heatmap_per_view() -> None:
    import torch

    from pipelines.training.model import ViewClassifier

    torch.manual_seed(0)
    model = ViewClassifier(width=4, top_k=0.1).eval()
    x = torch.rand(3, 1, 64, 48)
    with torch.no_grad():
        prob, heatmap = model(x)
        logits = model.logits(x)
        maps = model.saliency_logits(x)
    assert tuple(prob.shape) == (3, 1)
    assert tuple(heatmap.shape) == (3, 1, 4, 3)  # 1/16 of the input
    assert bool(((prob > 0) & (prob < 1)).all())
    torch.testing.assert_close(prob, torch.sigmoid(logits))
    torch.testing.assert_close(heatmap, torch.sigmoid(maps))
    # top-k pooling: the logit is the mean of the top 10% (1 of 12) locations: the maximum
    torch.testing.assert_close(logits[:, 0], maps.flatten(1).max(dim=1).values)


def test_a_bright_spot_raises_the_heatmap_where_it_is_after_training() -> None:
    """Weak supervision localizes: trained on view labels only, the heatmap peaks at the lesion."""
    import torch

    from pipelines.params import TrainParams
    from pipelines.training.data import Split
    from pipelines.training.fit import fit

    rng = np.random.default_rng(0)
    n, h, w = 96, 64, 64
    images = (rng.random((n, 1, h, w)) * 0.3).astype(np.float32)
    labels = np.zeros(n, np.float32)
    spots = {}
    for i in range(0, n, 2):  # every other view has a bright 6x6 spot in one 16x16 cell
        cell = (int(rng.integers(0, 4)), int(rng.integers(0, 4)))
        r, c = cell[0] * 16 + 5, cell[1] * 16 + 5
        images[i, 0, r:r + 6, c:c + 6] = 1.0
        labels[i], spots[i] = 1.0, cell
    exams = np.array([f"ex-{i}" for i in range(n)])
    split = Split(images, labels, exams, np.array(["L"] * n))
    params = TrainParams(epochs=12, batch_size=16, width=8, top_k=0.05, learning_rate=5e-3, patience=12)
    model, history = fit(split, split, params)
    assert history[-1]["val_auc"] > 0.95
    with torch.no_grad():
        _, heatmap = model(torch.from_numpy(images))
    assert tuple(heatmap.shape[2:]) == (4, 4)
    peaks = [np.unravel_index(int(heatmap[i, 0].argmax()), (4, 4)) for i in spots]
    hits = sum(int(peak == cell) for peak, cell in zip(peaks, spots.values(), strict=True))
    assert hits >= 0.6 * len(spots)  # by chance: 1 in 16


def test_onnx_export_matches_pytorch_and_takes_any_batch_size(tmp_path: Path) -> None:
    import onnxruntime as ort
    import torch

    from pipelines.modelfiles.onnx import PARITY_TOLERANCE, export, sha256
    from pipelines.training.model import ViewClassifier

    torch.manual_seed(0)
    model = ViewClassifier()
    example = np.random.default_rng(0).random((2, 1, 32, 24), dtype=np.float32)
    path = tmp_path / "model.onnx"
    diff = export(model, example, path)
    assert 0.0 <= diff <= PARITY_TOLERANCE <= 1e-4
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    assert [o.name for o in session.get_outputs()] == ["probability", "heatmap"]
    batch = np.random.default_rng(1).random((5, 1, 32, 24), dtype=np.float32)
    prob, heatmap = session.run(None, {"image": batch})
    with torch.no_grad():
        want_prob, want_heatmap = model.eval()(torch.from_numpy(batch))
    assert prob.shape == (5, 1) and heatmap.shape == (5, 1, 2, 1)
    np.testing.assert_allclose(prob, want_prob.numpy(), atol=1e-4)
    np.testing.assert_allclose(heatmap, want_heatmap.numpy(), atol=1e-4)
    assert len(sha256(path)) == 64 and sha256(path) == sha256(path)


def test_screening_scores_an_exam_as_training_does() -> None:
    from pipelines.scoring import exam_score, exam_table

    views = {"R-CC": 0.1, "L-CC": 0.8, "R-MLO": 0.3, "L-MLO": 0.6}
    rows = pd.DataFrame({"exam_id": ["e"] * 4, "laterality": [v[0] for v in views]})
    assert exam_score(views) == pytest.approx(0.7)  # the left breast: (0.8 + 0.6) / 2
    assert exam_score(views) == pytest.approx(exam_table(rows, np.array(list(views.values()))).score[0])


@pytest.mark.parametrize(("aggregation", "expected"), [("max", 0.8), ("mean", 0.45)])
def test_a_task_without_breasts_aggregates_its_views_directly(aggregation: str, expected: float) -> None:
    from pipelines.scoring import exam_score, exam_table

    rows = pd.DataFrame({"exam_id": ["a", "a", "b"], "label": [0, 1, 0]})
    exams = exam_table(rows, np.array([0.1, 0.8, 0.3]), aggregation)  # type: ignore[arg-type]
    a = {"max": 0.8, "mean": 0.45}[aggregation]
    assert exams.exam_id.tolist() == ["a", "b"] and exams.label.tolist() == [1, 0]
    assert exams.score.tolist() == pytest.approx([a, 0.3])
    assert "score_R" not in exams
    assert exam_score({"PA": 0.1, "LAT": 0.8}, aggregation) == pytest.approx(expected)  # type: ignore[arg-type]
