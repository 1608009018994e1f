"""The smoke check a new Triton version passes before it serves, by the precision it serves at.

Triton's answers on fixed inputs are compared with onnxruntime's FP32 answers on the same
ONNX file. What "the same" means depends on the precision of the profile:
- FP32 (the cpu profile: onnxruntime in the Python backend): both outputs within 1e-4 on
  two seeded noise images; the same arithmetic, so only summation order differs.
- FP16 (the gpu profile: TensorRT with precision_mode FP16) cannot meet 1e-4, so: both
  outputs within FP16_TOLERANCE, and the same flag at the model version's operating point
  (probability >= operating point) on every smoke input: ten fixed images (flag_inputs),
  plus two built to lie 1-2 FLAG_MARGIN below and above the operating point, where a bias
  the absolute bound still allows would change which exams reach the worklist. An input
  whose FP32 probability is closer than FLAG_MARGIN to the operating point is exempt from
  the flag comparison (FP16 rounding alone may flip it) and counted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from pipelines.errors import DeploymentFailed
from pipelines.modelfiles.onnx import OUTPUTS

if TYPE_CHECKING:
    from pipelines.triton_client import TritonClient

log = logging.getLogger(__name__)

Precision = Literal["FP32", "FP16"]
FP32_TOLERANCE = 1e-4
# FP16 keeps a 10-bit significand: unit roundoff 2**-11 ~ 4.9e-4, about 3 decimal digits,
# so a probability near 1 is stored 4.9e-4 apart and every TensorRT layer rounds its
# activations (and may accumulate) at that precision. Both outputs are sigmoids in [0, 1]
# whose slope is at most 1/4: an error d in the logit moves them by at most d/4. 2e-2
# absolute is ~40 FP16 steps at 1.0 (a logit error up to 0.08 at the steepest point):
# well above the rounding a correct engine accumulates (typically ~1e-3 on CNN sigmoid
# outputs), well below what a wrong one shows (other weights, a transposed input or a
# broken layer move scores by 0.1 and more).
FP16_TOLERANCE = 2e-2
# The constructed inputs lie at least this far from the operating point (~10 FP16 steps
# at 0.5, where the spacing is 4.9e-4): a flag flip there is a bias at the threshold ten
# times the rounding noise, not the rounding itself.
FLAG_MARGIN = FP16_TOLERANCE / 4
BISECTION_STEPS = 20  # per side; ~8 reach the band from 0.5 away
# (contrast, offset) of the flag-check images: seeded noise * contrast + offset, in [0, 1]
LEVELS = ((1.0, 0.0), (1.0, 0.0), (0.2, 0.0), (0.3, 0.1), (0.4, 0.3), (0.3, 0.6), (0.2, 0.8),
          (0.1, 0.9))


@dataclass(frozen=True)
class SmokeBound:
    """How close a served answer must be to onnxruntime's FP32 one."""

    precision: Precision
    tolerance: float  # max absolute difference on probability and heatmap
    flags: bool  # flags at the operating point must agree on every smoke input


BOUNDS: dict[Precision, SmokeBound] = {
    "FP32": SmokeBound("FP32", FP32_TOLERANCE, flags=False),
    "FP16": SmokeBound("FP16", FP16_TOLERANCE, flags=True),
}


@dataclass(frozen=True)
class SmokeReport:
    """What the smoke check saw (for logs and the GPU benchmark)."""

    probability: float  # the served probability of the first smoke input
    max_diff: dict[str, float]  # output -> max absolute difference to onnxruntime
    inputs: int
    near_threshold: tuple[float, ...]  # reference probability - operating point, built inputs
    flags_not_compared: int = 0  # inputs whose reference is within FLAG_MARGIN of the threshold


def smoke_input(height: int, width: int) -> np.ndarray:
    """A fixed input (seeded noise) whose expected output onnxruntime computes in-process."""
    return np.random.default_rng(0).random((2, 1, height, width), dtype=np.float32)


def flag_inputs(height: int, width: int) -> np.ndarray:
    """Ten fixed images: eight of seeded noise from dark to bright (the first two are
    `smoke_input`'s), then a mass-like blob and a cluster of bright specks on tissue-grey
    noise (what a trained model scores higher than noise, so that the probabilities
    spread and more often bracket the operating point)."""
    noise = np.random.default_rng(0).random((len(LEVELS), 1, height, width), dtype=np.float32)
    contrast = np.array([c for c, _ in LEVELS], np.float32)[:, None, None, None]
    offset = np.array([o for _, o in LEVELS], np.float32)[:, None, None, None]
    rng = np.random.default_rng(1)
    tissue = rng.random((2, 1, height, width), dtype=np.float32) * 0.3 + 0.2
    rows, cols = np.ogrid[:height, :width]
    sigma = max(2.0, min(height, width) / 12)
    tissue[0, 0] += 0.5 * np.exp(-((rows - height / 2) ** 2 + (cols - width / 2) ** 2) / (2 * sigma**2))
    for r, c in rng.normal((height / 2, width / 2), sigma, (24, 2)).astype(int):
        tissue[1, 0, max(0, r - 1):r + 2, max(0, c - 1):c + 2] = 1.0
    return np.concatenate([noise * contrast + offset, np.clip(tissue, 0, 1)]).astype(np.float32)


def _probability(session: Any, image: np.ndarray) -> float:
    return float(session.run([OUTPUTS[0]], {"image": image[None]})[0].reshape(-1)[0])


def _solve(session: Any, start: np.ndarray, end: np.ndarray, target: float, within: float,
           steps: int) -> np.ndarray | None:
    """An image on the segment start -> end whose probability is within `within` of
    `target` (bisection; p(start) < target < p(end)), or None after `steps` tries."""
    lo, hi = 0.0, 1.0
    for _ in range(steps):
        t = (lo + hi) / 2
        image = ((1 - t) * start + t * end).astype(np.float32)
        p = _probability(session, image)
        if abs(p - target) <= within:
            return image
        lo, hi = (lo, t) if p > target else (t, hi)
    return None


def near_threshold(session: Any, images: np.ndarray, probabilities: np.ndarray,
                   operating_point: float, margin: float = FLAG_MARGIN,
                   steps: int = BISECTION_STEPS) -> list[np.ndarray]:
    """Images whose reference probability lies between `margin` and 2 `margin` below, and
    above, the operating point.

    Searched on the straight line (in pixel space) between the two `images` that bracket
    the band [op - 2 margin, op + 2 margin] most closely. Empty when no image lies beyond
    the band on one side (the flags are then compared on the fixed images only).
    """
    low = np.flatnonzero(probabilities < operating_point - 2 * margin)
    high = np.flatnonzero(probabilities > operating_point + 2 * margin)
    if not len(low) or not len(high):
        return []
    start = images[low[np.argmax(probabilities[low])]]
    end = images[high[np.argmin(probabilities[high])]]
    found = [_solve(session, start, end, operating_point + sign * 1.5 * margin, margin / 2, steps)
             for sign in (-1, 1)]
    return [image for image in found if image is not None]


Outputs = dict[str, np.ndarray]


def _add_near_threshold(label: str, session: Any, images: np.ndarray, want: Outputs,
                        operating_point: float) -> tuple[np.ndarray, Outputs, tuple[float, ...]]:
    """`images` and their reference outputs with the near-threshold images appended, and
    the latter's reference probability minus the operating point."""
    near = near_threshold(session, images, want[OUTPUTS[0]].reshape(-1), operating_point)
    if not near:
        log.warning("%s: every smoke input's probability lies on one side of the operating "
                    "point %.4f; flags compared away from it only", label, operating_point)
        return images, want, ()
    extra = np.stack(near)
    more = session.run(list(OUTPUTS), {"image": extra})
    want = {name: np.concatenate([want[name], m]) for name, m in zip(OUTPUTS, more, strict=True)}
    return (np.concatenate([images, extra]), want,
            tuple(float(p) - operating_point for p in more[0].reshape(-1)))


def _compare(label: str, bound: SmokeBound, got: dict[str, np.ndarray],
             want: dict[str, np.ndarray]) -> dict[str, float]:
    diffs = {}
    for name in OUTPUTS:
        diffs[name] = float(np.abs(got[name] - want[name]).max())
        if diffs[name] > bound.tolerance:
            raise DeploymentFailed(f"{label} answered a {name} {diffs[name]:.2e} away from "
                                   f"onnxruntime on the same file (> {bound.tolerance:.0e}, "
                                   f"{bound.precision} bound); not switched")
    return diffs


def _check_flags(label: str, bound: SmokeBound, got: np.ndarray, want: np.ndarray,
                 operating_point: float) -> int:
    """Compare flags where the reference is at least FLAG_MARGIN from the operating point
    (closer, FP16 rounding alone may flip it: a fixed input landing there would refuse
    every deploy of that version); returns how many inputs were that close."""
    close = 0
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        if abs(w - operating_point) < FLAG_MARGIN:
            close += 1
        elif (g >= operating_point) != (w >= operating_point):
            raise DeploymentFailed(
                f"{label} flags smoke input {i} differently at the operating point "
                f"{operating_point:.4f}: probability {g:.5f} served, {w:.5f} from onnxruntime "
                f"(difference {abs(g - w):.2e}, within the {bound.precision} bound "
                f"{bound.tolerance:.0e}); not switched")
    return close


def smoke_check(triton: TritonClient, model: str, version: int, onnx_file: Path,
                size: tuple[int, int], bound: SmokeBound, operating_point: float,
                batch_size: int) -> SmokeReport:
    """Serve the smoke inputs through `model` `version` and compare with onnxruntime.

    Args:
        bound: the bound of the precision the profile serves at (BOUNDS).
        operating_point: the model version's; flags are compared at it when `bound.flags`.

    Raises:
        DeploymentFailed: Triton did not answer, an output differs by more than the bound,
            or (FP16) a smoke input is flagged differently at the operating point.
    """
    import onnxruntime as ort

    label = f"{model} v{version}"
    images = flag_inputs(*size) if bound.flags else smoke_input(*size)
    try:
        session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
        want = dict(zip(OUTPUTS, session.run(list(OUTPUTS), {"image": images}), strict=True))
        gaps: tuple[float, ...] = ()
        if bound.flags:
            images, want, gaps = _add_near_threshold(label, session, images, want, operating_point)
        got = triton.infer_outputs(model, images, batch_size, str(version))
    except Exception as exc:  # a model that cannot answer the configured input is never switched to
        raise DeploymentFailed(f"{label} failed its smoke inference on input "
                               f"{list(images.shape)}: {exc}; not switched") from exc
    diffs = _compare(label, bound, got, want)
    close = _check_flags(label, bound, got[OUTPUTS[0]].reshape(-1), want[OUTPUTS[0]].reshape(-1),
                         operating_point) if bound.flags else 0
    log.info("%s smoke check (%s): %d inputs, max difference %s, built near the operating "
             "point %s, %d too close to it to compare flags", label, bound.precision,
             len(images), diffs, gaps, close)
    return SmokeReport(float(got[OUTPUTS[0]][0, 0]), diffs, len(images), gaps, close)
