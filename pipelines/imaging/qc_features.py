"""Measurements of one displayed mammogram that image QC compares with its limits.

Every function takes the canonical image (chest wall on the left) scaled to [0, 1] over
the display range (0 = darkest displayed value, 1 = brightest) and the body mask (the
breast, holes filled). Sizes are shares of the image height, so the numbers do not depend
on the working resolution; intensities are shares of the display range.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

# A pixel this close to the display maximum (minimum) is saturated (burned out).
CLIP_MARGIN = 0.01
# Metal in a displayed image is at the top of the display range: at least this bright.
METAL_LEVEL = 0.97
# ... and this share of its pixels are at the display maximum (bright tissue varies).
METAL_FLAT = 0.95
# Fine detail must stand this far above the noise's share of the fine band (its estimate
# is good to a few percent) before its directions are compared.
MIN_DETAIL = 0.1
# A spectral peak is compared with the median power of this many neighbouring frequencies.
PEAK_NEIGHBOURS = 15


@dataclasses.dataclass(frozen=True)
class BrightObject:
    """The most metal-like compact bright object found (contrast 0 when there is none)."""

    contrast: float  # its mean minus the mean of a ring just outside it (display range)
    size: float  # its diameter (holes filled) as a share of the image height


def block_mean(arr: np.ndarray, step: int) -> np.ndarray:
    """The mean of each step x step block (the edge remainder is dropped)."""
    if step <= 1:
        return arr
    rows, cols = arr.shape[0] // step * step, arr.shape[1] // step * step
    return arr[:rows, :cols].reshape(rows // step, step, cols // step, step).mean(axis=(1, 3))


def clipped_shares(norm: np.ndarray, body: np.ndarray) -> tuple[float, float]:
    """Shares of body pixels at the display maximum (saturated) and minimum (burned out)."""
    count = int(body.sum())
    if count == 0:
        return 0.0, 0.0
    values = norm[body]
    high = float(np.count_nonzero(values >= 1.0 - CLIP_MARGIN)) / count
    low = float(np.count_nonzero(values <= CLIP_MARGIN)) / count
    return high, low


def bright_object(
    norm: np.ndarray, near: np.ndarray, min_size: float, max_size: float
) -> BrightObject:
    """The compact metal-bright object on or next to the breast with the sharpest edge.

    Args:
        norm: the scaled canonical image at working resolution (thin rings survive there).
        near: where to look, at `norm`'s resolution: the breast grown by a margin.
        min_size: the smallest diameter, as a share of the image height (calcifications
            are smaller).
        max_size: the largest (a saturated area is larger).

    Candidates are connected regions at METAL_LEVEL or above, mostly (METAL_FLAT) at the
    display maximum, about as wide as tall, filling at least half of their box once holes
    are filled (a ring counts). Their
    contrast is their mean minus the mean of a ring just outside: metal ends in a step,
    while a mass rises smoothly and the ring around its brightest core is nearly as bright.
    """
    from scipy import ndimage

    rows = norm.shape[0]
    labels, count = ndimage.label((norm >= METAL_LEVEL) & near)
    best = BrightObject(0.0, 0.0)
    if count == 0:
        return best
    for number, box in enumerate(ndimage.find_objects(labels), 1):
        if box is None:
            continue
        height, width = box[0].stop - box[0].start, box[1].stop - box[1].start
        if not min_size * rows <= max(height, width) <= max_size * rows:
            continue
        if max(height, width) > 2 * min(height, width):
            continue
        pad = max(2, max(height, width) // 4)
        top, left = max(box[0].start - pad, 0), max(box[1].start - pad, 0)
        window = (slice(top, box[0].stop + pad), slice(left, box[1].stop + pad))
        inner = labels[window] == number
        inside = np.asarray(ndimage.binary_fill_holes(inner))
        if inside.sum() < 0.5 * height * width:
            continue
        if np.mean(norm[window][inner] >= 1.0 - CLIP_MARGIN) < METAL_FLAT:
            continue  # bright tissue varies; metal stops every photon: flat at the top
        ring = ndimage.binary_dilation(inside, iterations=pad) & ~inside
        if not ring.any():
            continue
        contrast = float(norm[window][inner].mean() - norm[window][ring].mean())
        if contrast > best.contrast:
            diameter = 2.0 * float(np.sqrt(inside.sum() / np.pi))
            best = BrightObject(contrast, diameter / rows)
    return best


def sharpness(work: np.ndarray, interior: np.ndarray, scale: float = 1.0) -> tuple[float, float]:
    """Fine detail of the breast above the noise: how much, and how evenly in every direction.

    The fine band of the image (smoothed over `scale` pixels minus smoothed over twice
    that, which drops most pixel noise and the coarse glandular pattern that blur barely
    changes) is differentiated and its gradients averaged into a structure tensor over the
    breast interior. Motion smears detail along the direction of motion: the gradient
    energy in that direction falls while the perpendicular one stays.

    The band is tied to the anatomy, not to the detector: `scale` is the image height over
    512 rows, so the band is about 0.5-1 mm on any 24-29 cm detector at any matrix size
    (never finer than 0.7 pixel). Pixel noise is added after any motion, equally in every
    direction, and on a noisy or finely sampled detector it can outweigh the tissue detail
    in the band and hide the blur; so the noise's expected share of each direction's
    energy (white noise of the variance `noise_variance` measures, through the same
    filters) is subtracted before the directions are compared.

    Args:
        work: the scaled canonical image at measuring resolution.
        interior: the breast interior to average over.
        scale: the image height over 512 rows (sets the band in pixels).

    Returns:
        (sharpness, balance): the noise-free fine-band gradient energy over the noise-free
        fine-band variance (falls with blur in any direction), and the smaller over the
        larger eigenvalue of the noise-free tensor (1 for detail alike in every direction,
        low for directional blur). (1, 1) when the interior is too small to measure, and
        balance 1 when no detail stands above the noise.
    """
    from scipy import ndimage

    if interior.sum() < 100:
        return 1.0, 1.0
    fine, coarse = max(0.7, scale), max(1.4, 2.0 * scale)
    band = ndimage.gaussian_filter(work, fine) - ndimage.gaussian_filter(work, coarse)
    gy, gx = np.gradient(band)
    gx, gy = gx[interior], gy[interior]
    noise = noise_variance(work, interior)
    gradient_gain, band_gain = _white_noise_gains(round(fine, 3), round(coarse, 3))
    xx = max(float(np.mean(gx * gx)) - noise * gradient_gain, 0.0)
    yy = max(float(np.mean(gy * gy)) - noise * gradient_gain, 0.0)
    xy = float(np.mean(gx * gy))  # white noise adds nothing here (its kernels are odd)
    half_trace, det = (xx + yy) / 2.0, xx * yy - xy * xy
    spread = float(np.sqrt(max(half_trace * half_trace - det, 0.0)))
    variance = float(np.var(band[interior])) - noise * band_gain
    if variance <= 1e-12 or half_trace + spread <= MIN_DETAIL * noise * gradient_gain:
        return 1.0, 1.0  # nothing above the noise (to within its estimate): nothing to compare
    return half_trace / variance, max(half_trace - spread, 0.0) / (half_trace + spread)


# Immerkaer's kernel: blind to planes and nearly so to smooth tissue; its response to white
# noise of variance v has variance 36 v (the sum of its squared weights).
_NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)


def noise_variance(work: np.ndarray, interior: np.ndarray) -> float:
    """The variance of the pixel noise over the breast interior (a robust estimate: the
    median absolute response of `_NOISE_KERNEL`, so edges and specks do not inflate it)."""
    from scipy import ndimage

    response = ndimage.convolve(work, _NOISE_KERNEL, mode="nearest")[interior]
    deviation = float(np.median(np.abs(response))) / 0.6745  # the sd of a normal variable
    return deviation * deviation / 36.0


@functools.lru_cache(maxsize=32)
def _white_noise_gains(fine: float, coarse: float) -> tuple[float, float]:
    """(gradient, band): the variance of one gradient component and of the band that
    `sharpness` computes from white noise of unit variance (its filters' squared weights)."""
    from scipy import ndimage

    half = int(np.ceil(4.0 * coarse)) + 2
    impulse = np.zeros((2 * half + 1, 2 * half + 1))
    impulse[half, half] = 1.0
    band = ndimage.gaussian_filter(impulse, fine) - ndimage.gaussian_filter(impulse, coarse)
    _, gx = np.gradient(band)
    return float(np.sum(gx * gx)), float(np.sum(band * band))


def grid_peak(norm: np.ndarray, body: np.ndarray) -> tuple[float, float]:
    """How strongly a periodic line pattern stands out: the strongest narrow peak of the
    column- and row-mean profiles' spectra over the median power of its neighbouring
    frequencies, and its period in pixels (0 when the breast is too small to measure).

    Averaging along lines keeps them and averages the tissue texture away; a smooth trend
    (the breast's thickness falling off) is removed first.
    """
    from scipy import ndimage

    best, period = 0.0, 0.0
    for axis in (0, 1):
        counts = body.sum(axis=axis)
        keep = counts >= 0.3 * max(int(counts.max()), 1)
        if keep.sum() < 64:
            continue
        profile = (np.where(body, norm, 0.0).sum(axis=axis)[keep] / counts[keep]).astype(np.float64)
        detrended = profile - _smooth_1d(profile, 8.0)
        power = np.abs(np.fft.rfft(detrended * np.hanning(detrended.size))) ** 2
        frequency = np.fft.rfftfreq(detrended.size)
        band = (frequency >= 1.0 / 48.0) & (frequency <= 0.45)
        if band.sum() < 8:
            continue
        # against the running median: a narrow peak stands out, a broad texture does not
        background = ndimage.median_filter(power, size=PEAK_NEIGHBOURS, mode="nearest")
        ratio_all = np.where(band, power / np.maximum(background, 1e-18), 0.0)
        peak = int(np.argmax(ratio_all))
        ratio = float(ratio_all[peak])
        if ratio > best:
            best, period = ratio, 1.0 / float(frequency[peak])
    return best, period


def _smooth_1d(values: np.ndarray, sigma: float) -> np.ndarray:
    from scipy import ndimage

    return np.asarray(ndimage.gaussian_filter1d(values, sigma, mode="nearest"))


def pectoral_contrast(norm: np.ndarray, body: np.ndarray) -> float:
    """How much brighter the chest-wall top corner of the breast is than the breast.

    In canonical orientation the pectoral muscle of an MLO view is a bright triangle at
    the top left. The corner triangle here spans 15% of the breast's width along its top
    and 20% of its height down the chest wall; the result is the median there minus the
    median of the breast, over the breast's 10-90% spread (-1 if the corner is empty).
    """
    ys, xs = np.nonzero(body)
    if ys.size < 100:
        return -1.0
    top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    legs_x, legs_y = 0.15 * (right - left), 0.2 * (bottom - top)
    yy, xx = np.ogrid[top:top + int(np.ceil(legs_y)), left:left + int(np.ceil(legs_x))]
    corner = ((xx - left) / legs_x + (yy - top) / legs_y < 1.0) & body[yy, xx]
    if corner.sum() < 20:
        return -1.0
    values = norm[body]
    low, middle, high = (float(v) for v in np.percentile(values, (10, 50, 90)))
    spread = max(high - low, 1e-6)
    return (float(np.median(norm[yy, xx][corner])) - middle) / spread
