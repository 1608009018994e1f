"""Exam pools for the drift simulation: synthetic exams through the nightly path, scored.

A pool is a fixed set of synthetic exams (one site, one unit, one seed) pushed through
exactly what a night's studies go through, without Orthanc: synth's DICOM datasets are
preprocessed and QC'd by `pipelines.screening.collect.prepare_view`, scored by an ONNX
model (view probabilities aggregated as screening does, QC-flagged views discounted) and
turned into monitoring features by `pipelines.features.exam_row`. Rendering and
preprocessing run in worker processes; the model runs once, in this process, over the
whole pool. Exam ids are the pool's name and index, never synth's PHI-looking identifiers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.domain import QC_CODES

if TYPE_CHECKING:
    from concurrent.futures import Executor

    import pandas as pd
    from pydicom import Dataset

log = logging.getLogger(__name__)

CHUNK = 8  # exams per worker task: small enough for steady progress lines
SCORE_BATCH = 32  # exams scored by the model together


@dataclasses.dataclass(frozen=True)
class PoolSpec:
    """What synth draws for one pool.

    Attributes:
        name: the pool's role ("reference", "stable", "vendor", "degradation", "train").
        exams: how many exams.
        seed: synth's batch seed (distinct per pool, so no exam is in two pools).
        site: synth site; "north" screens on a GE unit.
        vendor: another vendor's unit at the same site (a vendor change), or None.
        detector_degradation: 0 (healthy) to 1 (badly aged detector).
        scale: fraction of the detector matrix synth renders.
        positive_rate: share of exams with a suspicious mass.
        study_date: the batch date synth seeds the plans with.
    """

    name: str
    exams: int
    seed: int
    site: str = "north"
    vendor: str | None = None
    detector_degradation: float = 0.0
    scale: float = 0.125
    positive_rate: float = 0.15
    study_date: str = "2026-01-05"


@dataclasses.dataclass(frozen=True)
class RenderedExam:
    """One exam after the nightly preprocessing and QC (picklable between processes).

    Attributes:
        exam_id: "<pool>-<index>".
        label: 1 if synth planted a suspicious mass.
        lesion_side: "R", "L" or "" (the breast holding it).
        views: the task's view names, in order.
        headers: the views' DICOM headers without pixel data (synthetic, kept in memory only).
        images: model inputs [V, H, W] float32 in [0, 1].
        flags: the QC codes raised on each view.
    """

    exam_id: str
    label: int
    lesion_side: str
    views: tuple[str, ...]
    headers: tuple[Dataset, ...]
    images: np.ndarray
    flags: tuple[tuple[str, ...], ...]


@dataclasses.dataclass(frozen=True)
class Pool:
    """A scored pool: one features row per exam and its QC counts.

    Attributes:
        spec: how it was drawn.
        table: `features.frame` rows (metadata, image statistics, embedding, score).
        flagged: [exams, len(QC_CODES)] views flagged per QC code.
        views: [exams] views per exam.
    """

    spec: PoolSpec
    table: pd.DataFrame
    flagged: np.ndarray
    views: np.ndarray

    def qc_counts(self, index: np.ndarray | None = None) -> pd.DataFrame:
        """Views and flagged views per (device, QC code) of the exams at `index` (all if None).

        Every code appears for every device, with 0 flagged when it never fired, as the
        nightly run counts them.
        """
        import pandas as pd

        rows = np.arange(len(self.table)) if index is None else np.asarray(index)
        devices = self.table["device"].to_numpy()[rows]
        out = []
        for device in sorted(set(devices.tolist())):
            mine = rows[devices == device]
            views = int(self.views[mine].sum())
            out += [{"device": device, "code": code, "views": views,
                     "flagged": int(self.flagged[mine, k].sum())} for k, code in enumerate(QC_CODES)]
        return pd.DataFrame(out, columns=["device", "code", "views", "flagged"])


def render(spec: PoolSpec, start: int, stop: int, height: int, width: int) -> list[RenderedExam]:
    """Exams start..stop-1 of the pool through synth and `prepare_view` (a worker's task)."""
    from pipelines.deid import without_pixel_data
    from pipelines.screening.collect import prepare_view
    from pipelines.synth.generate import REPORT, iter_exams
    from pipelines.tasks import get_task

    task = get_task("mammo")
    out = []
    for exam in iter_exams(stop, spec.study_date, spec.site, spec.seed, positive_rate=spec.positive_rate,
                           scale=spec.scale, start=start, vendor=spec.vendor,
                           detector_degradation=spec.detector_degradation):
        views = {i.name: i.dataset for i in exam.instances if i.name != REPORT}
        images, flags = [], []
        for view in task.views:
            image, qc = prepare_view(views[view], view, task, height, width, decode_timeout_s=60.0)
            images.append(image)
            flags.append(tuple(f.code for f in qc.flags))
        out.append(RenderedExam(
            exam_id=f"{spec.name}-{exam.plan.index:05d}", label=int(exam.plan.positive),
            lesion_side=exam.plan.lesion_side if exam.plan.positive else "", views=tuple(task.views),
            headers=tuple(without_pixel_data(views[v]) for v in task.views),
            images=np.stack(images).astype(np.float32), flags=tuple(flags)))
    return out


@contextlib.contextmanager
def renderers(workers: int) -> Iterator[Executor | None]:
    """Worker processes for `render_all`, shared by all pools (None: render in this process).

    Spawned, not forked: this process may already hold torch's and onnxruntime's threads.
    """
    if workers <= 1:
        yield None
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


def render_all(spec: PoolSpec, height: int, width: int, executor: Executor | None) -> Iterator[RenderedExam]:
    """Every exam of the pool, in index order (whatever the executor), with a progress log
    line (count and rate) about every 10% of the pool."""
    chunks = [(s, min(s + CHUNK, spec.exams)) for s in range(0, spec.exams, CHUNK)]
    started, step = time.monotonic(), max(CHUNK, spec.exams // 10)
    if executor is None:
        batches: Iterator[list[RenderedExam]] = (render(spec, s, e, height, width) for s, e in chunks)
    else:
        batches = executor.map(render, *zip(*[(spec, s, e, height, width) for s, e in chunks], strict=True))
    for (s, e), batch in zip(chunks, batches, strict=True):
        yield from batch
        if e // step > s // step or e == spec.exams:
            log.info("simulate: pool %s %d/%d exams (%.1f exams/s)", spec.name, e, spec.exams,
                     e / max(time.monotonic() - started, 1e-9))


class ExamScorer:
    """View probabilities and embeddings of model inputs from one ONNX file, in one pass:
    the Embedder's (the served graph plus its feature map as an output), so the embedding
    is the one nightly monitoring computes and the probability is Triton's."""

    def __init__(self, onnx_file: Path, batch_size: int = 64) -> None:
        from pipelines.modelfiles.embeddings import Embedder

        self.embedder = Embedder(onnx_file, batch_size)

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities [N], embeddings [N, C]) of model inputs [N, 1, H, W]."""
        embeddings, probabilities = self.embedder.embed_and_score(images)
        return probabilities, embeddings


def score_batch(exams: list[RenderedExam], scorer: ExamScorer) -> list[dict[str, Any]]:
    """The exams' monitoring feature rows, each scored by screening's own `score_without`
    (QC-flagged views left out unless every view is flagged; breast mean, exam max)."""
    from pipelines.features import exam_row
    from pipelines.screening.suspicion import score_without
    from pipelines.tasks import get_task

    if not exams:
        return []
    task = get_task("mammo")
    probs, embeds = scorer.run(np.concatenate([e.images for e in exams])[:, None])
    rows, offset = [], 0
    for e in exams:
        at = slice(offset, offset + len(e.views))
        views = {v: float(p) for v, p in zip(e.views, probs[at], strict=True)}
        discounted = [v for v, flags in zip(e.views, e.flags, strict=True) if flags]
        rows.append(exam_row(e.exam_id, e.headers, list(e.images), embeds[at],
                             score_without(task, views, discounted)[0]))
        offset += len(e.views)
    return rows


def build_pool(spec: PoolSpec, onnx_file: Path, height: int, width: int,
               executor: Executor | None) -> Pool:
    """The pool's exams rendered, preprocessed, QC'd, scored and described (see module doc)."""
    from pipelines.features import frame

    scorer = ExamScorer(onnx_file)
    rows: list[dict[str, Any]] = []
    flagged, views, batch = [], [], []
    for exam in render_all(spec, height, width, executor):
        batch.append(exam)
        flagged.append([sum(code in f for f in exam.flags) for code in QC_CODES])
        views.append(len(exam.views))
        if len(batch) == SCORE_BATCH:
            rows += score_batch(batch, scorer)
            batch = []
    rows += score_batch(batch, scorer)
    return Pool(spec, frame(rows), np.array(flagged, dtype=np.int64).reshape(-1, len(QC_CODES)),
                np.array(views, dtype=np.int64))


def untrained_model(out: Path, height: int, width: int, seed: int) -> Path:
    """A seeded, untrained ViewClassifier exported to `out` (a fast stand-in for tests).

    Its scores carry no diagnostic meaning, but its embedding and scores still respond to
    the image, which is all the drift tests look at.
    """
    import torch

    from pipelines.modelfiles.onnx import export
    from pipelines.training.model import ViewClassifier

    torch.manual_seed(seed)
    export(ViewClassifier().eval(), np.zeros((1, 1, height, width), np.float32), out)
    return out


def trained_model(spec: PoolSpec, out: Path, height: int, width: int, executor: Executor | None,
                  epochs: int, seed: int) -> Path:
    """A ViewClassifier trained by `pipelines.training.fit` on its own pool, exported to `out`.

    The pool's last quarter of exams is the validation split that picks the best epoch.
    A view's label is 1 when its breast holds the exam's suspicious mass.

    Raises:
        NoTrainingData: the pool is too small to hold both classes in both splits.
    """
    from pipelines.errors import NoTrainingData
    from pipelines.modelfiles.onnx import export
    from pipelines.params import TrainParams
    from pipelines.training.data import Split
    from pipelines.training.fit import fit

    exams = list(render_all(spec, height, width, executor))
    cut = len(exams) - max(1, len(exams) // 4)
    splits = []
    for part in (exams[:cut], exams[cut:]):
        if len({e.label for e in part}) < 2:
            raise NoTrainingData(f"training pool of {spec.exams} exams (positive rate "
                                 f"{spec.positive_rate}) lacks a class in a split: use more exams")
        sides = [(e, v) for e in part for v in e.views]
        splits.append(Split(
            images=np.stack([e.images[e.views.index(v)] for e, v in sides])[:, None],
            labels=np.array([float(e.lesion_side == v[0]) for e, v in sides], np.float32),
            exam_ids=np.array([e.exam_id for e, _ in sides]),
            laterality=np.array([v[0] for _, v in sides])))
    model, history = fit(splits[0], splits[1], TrainParams(epochs=epochs, seed=seed, patience=epochs))
    log.info("simulate: trained on %d exams, best validation exam AUC %.3f", cut,
             max(h["val_auc"] for h in history))
    export(model, splits[1].images[:1], out)
    return out


def registered_model(uri: str, out_dir: Path) -> tuple[Path, float | None]:
    """The ONNX file of a registered version (`models:/<name>@<alias>`), hash-checked, and
    its operating_point tag (None when it has none).

    Raises:
        PermanentError: the URI names no registered version; DeploymentFailed or
            ModelIntegrityError: its file is missing or not the registered one.
    """
    from pipelines.modelfiles.integrity import fetch_onnx, registered_sha, resolve
    from pipelines.tracking import mlflow_client

    mv = resolve(mlflow_client(), uri)
    path = fetch_onnx(str(mv.run_id), registered_sha(mv), out_dir)
    raw = (mv.tags or {}).get("operating_point")
    try:
        return path, float(raw) if raw is not None else None
    except ValueError:
        return path, None
