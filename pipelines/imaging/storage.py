"""How preprocessed views are stored in the lake: uint16 fixed point, 2 bytes like float16.

float16 keeps 11 significant bits: in [0.5, 1] its step is 2**-11, about 8 grey levels of
a 14-bit mammogram, so the brighter half of the image (dense tissue, calcifications) is
quantized. uint16 scaled by 65535 has a uniform step of 1.5e-5 (4 times finer than one
14-bit level) at the same size, and integers compress better.
"""

from __future__ import annotations

import numpy as np

SCALE = 65535.0


def to_lake(arr: np.ndarray) -> np.ndarray:
    """A [0, 1] float image as uint16 (values outside [0, 1] are clipped)."""
    return np.round(np.clip(arr, 0.0, 1.0) * SCALE).astype(np.uint16)


def from_lake(stored: np.ndarray) -> np.ndarray:
    """The float32 [0, 1] image of a lake array (uint16, or float16 written before)."""
    if stored.dtype == np.uint16:
        return stored.astype(np.float32) / np.float32(SCALE)
    return stored.astype(np.float32)
