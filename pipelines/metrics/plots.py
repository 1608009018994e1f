"""The evaluation figures as PNG files: ROC curve, reliability diagram, heatmap gallery.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot), so nothing here
needs a display or touches matplotlib's global state. Each function takes the data and
the output path and returns the path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from pipelines.metrics.binary import AucEstimate, ReliabilityBin, sensitivity_specificity

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 100


@dataclasses.dataclass(frozen=True)
class GalleryView:
    """One panel of the gallery: a view [H, W] and its heatmap [h, w], both in [0, 1]."""

    image: np.ndarray
    heatmap: np.ndarray
    title: str


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def roc_plot(labels: ArrayLike, scores: ArrayLike, path: Path, *, operating_point: float | None = None,
             auc: AucEstimate | None = None) -> Path:
    """The exam-level ROC curve, with the operating point marked when one is given."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    figure = _figure(5, 5)
    ax = figure.add_subplot()
    name = "ROC" if auc is None else (f"AUC {auc.auc:.3f} ({auc.level:.0%} CI "
                                      f"{auc.ci_low:.3f}-{auc.ci_high:.3f})")
    ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    if operating_point is not None:
        sensitivity, specificity = sensitivity_specificity(labels, scores, operating_point)
        ax.plot([1 - specificity], [sensitivity], "o", color="crimson",
                label=f"operating point {operating_point:.3f}: sens {sensitivity:.2f}, "
                      f"spec {specificity:.2f}")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", xlim=(0, 1), ylim=(0, 1.01),
           title="Exam-level ROC")
    ax.legend(loc="lower right", fontsize="small")
    return _save(figure, path)


def reliability_plot(curve: Sequence[ReliabilityBin], ece: float, path: Path) -> Path:
    """Observed malignancy rate against mean predicted probability per bin, with counts."""
    figure = _figure(5, 6)
    top, bottom = figure.subplots(2, 1, height_ratios=(3, 1), sharex=True)
    top.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfect calibration")
    top.plot([b.mean_predicted for b in curve], [b.observed_rate for b in curve], "o-",
             label=f"model (ECE {ece:.3f})")
    top.set(ylabel="observed rate", xlim=(0, 1), ylim=(0, 1), title="Exam-level reliability")
    top.legend(loc="upper left", fontsize="small")
    bottom.bar([b.low for b in curve], [b.count for b in curve],
               width=[b.high - b.low for b in curve], align="edge", edgecolor="white")
    bottom.set(xlabel="predicted probability", ylabel="exams")
    return _save(figure, path)


def heatmap_gallery(rows: Mapping[str, Sequence[GalleryView]], path: Path) -> Path:
    """One figure row per entry of `rows` (e.g. "true positives"), its views left to right
    with the heatmap stretched over the image; a row without views says so."""
    columns = max([1, *(len(views) for views in rows.values())])
    figure = _figure(2.4 * columns, 3.2 * max(len(rows), 1))
    axes = np.asarray(figure.subplots(max(len(rows), 1), columns, squeeze=False))
    for ax in axes.flat:
        ax.set_axis_off()
    for r, (name, views) in enumerate(rows.items()):
        if not views:
            axes[r, 0].text(0.0, 0.5, f"{name}: none", fontsize="medium")
        for c, view in enumerate(views):
            ax, (height, width) = axes[r, c], view.image.shape
            ax.imshow(view.image, cmap="gray", vmin=0.0, vmax=1.0)
            # the extent upsamples the coarse heatmap onto the image's pixel grid
            ax.imshow(view.heatmap, cmap="jet", alpha=0.35, vmin=0.0, vmax=1.0,
                      interpolation="bilinear", extent=(-0.5, width - 0.5, height - 0.5, -0.5))
            ax.set_title(f"{name}\n{view.title}" if c == 0 else view.title, fontsize="small")
    return _save(figure, path)
