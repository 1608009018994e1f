"""DICOM pixels to the model's input: one function used by ingest, training and Triton.

Steps: decode (optionally in a child process with a time limit) and block-average to the
working resolution (at least WORK_ROWS rows and twice the output), modality LUT, VOI LUT
or window, MONOCHROME1 inverted, chest wall to the left, cropped to the breast, scaled
to [0, 1], resized to the configured size. Ingest looks for burned-in text between the
display and the crop (`view_pixels`, then `model_input`); Triton's ensemble splits at
the stored pixels (`stored_pixels` on the client, the rest on the server: stored.py).
`model_input_box` and `peak_location` map the model input back onto the stored pixels
(where screening's CAD SR places its marks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pipelines.errors import InvalidStudy
from pipelines.imaging.crop import Box, breast_box, crop_to_breast
from pipelines.imaging.decode import decode, decode_reduced

if TYPE_CHECKING:
    from pydicom import Dataset

# Crop and burned-in text detection need about this many rows; the model often fewer.
WORK_ROWS = 1024


def display_pixels(ds: Dataset, raw: np.ndarray | None = None) -> np.ndarray:
    """The image as displayed (float32, bright = dense), before orientation and resizing.

    Args:
        ds: the dataset.
        raw: its already decoded stored pixels (decoded here when None).

    Raises:
        InvalidStudy: the pixel data cannot be decoded or is not one 2-D frame.
    """
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    if raw is None:
        raw = decode(ds)
    if raw.ndim != 2:
        raise InvalidStudy(f"expected a single-frame 2-D image (NumberOfFrames 1, SamplesPerPixel 1), "
                           f"got shape {raw.shape}")
    arr = apply_modality_lut(raw, ds)
    if "WindowCenter" in ds or "VOILUTSequence" in ds:
        arr = apply_voi_lut(arr, ds, prefer_lut=True)
    arr = np.asarray(arr, dtype=np.float32)
    if str(ds.get("PhotometricInterpretation", "MONOCHROME2")) == "MONOCHROME1":
        arr = arr.max() - arr
    return arr


def chest_wall_is_right(ds: Dataset, laterality: str) -> bool:
    """Whether the stored image has the chest wall on the right (and must be mirrored).

    PatientOrientation says it when present: its first value is the direction of
    increasing column, "A..." (towards the nipple) for chest wall left, "P..." for right.
    Otherwise the modality convention holds (right breast stored chest wall right),
    unless FieldOfViewHorizontalFlip says the detector image was mirrored.
    """
    orientation = ds.get("PatientOrientation")
    if orientation is not None and not isinstance(orientation, str) and len(orientation) == 2:
        row_direction = str(orientation[0])[:1].upper()
        if row_direction in ("A", "P"):
            return row_direction == "P"
    flipped = str(ds.get("FieldOfViewHorizontalFlip", "") or "").upper() == "YES"
    return (laterality == "R") != flipped


def canonical(arr: np.ndarray, mirror: bool) -> np.ndarray:
    """Mirror the image if asked, so the chest wall is on the left for every view."""
    return arr[:, ::-1] if mirror else arr


def rescale(arr: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1] (a constant image becomes all zeros)."""
    lo, hi = float(arr.min()), float(arr.max())
    if hi - lo < 1e-6:
        return np.zeros_like(arr, dtype=np.float32)
    return ((arr - lo) / (hi - lo)).astype(np.float32)


def resize(arr: np.ndarray, height: int, width: int) -> np.ndarray:
    """Antialiased bilinear resize of a float image."""
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(arr, dtype=np.float32), mode="F")
    return np.asarray(img.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)


def view_pixels(ds: Dataset, height: int, *, decode_timeout_s: float | None = None) -> np.ndarray:
    """The displayed image at working resolution (`display_pixels` of the reduced pixels).

    Args:
        ds: one MG image.
        height: rows of the model input (the working image keeps at least twice as many).
        decode_timeout_s: decode compressed pixels in a child process killed after this
            many seconds (ingest sets it; None decodes in this process).

    Raises:
        InvalidStudy: the pixels cannot be decoded (in time) or are not one 2-D frame.
    """
    return display_pixels(ds, stored_pixels(ds, height, decode_timeout_s=decode_timeout_s))


def stored_pixels(ds: Dataset, height: int, *, decode_timeout_s: float | None = None) -> np.ndarray:
    """The stored values at working resolution: decoded and block-averaged, before any LUT.

    Args:
        ds: one MG image.
        height: rows of the model input (the working image keeps at least twice as many).
        decode_timeout_s: as in `view_pixels`.

    Raises:
        InvalidStudy: the pixels cannot be decoded (in time).
    """
    return decode_reduced(ds, max(WORK_ROWS, 2 * height), decode_timeout_s)


def model_input(display: np.ndarray, mirror: bool, height: int, width: int) -> np.ndarray:
    """Displayed pixels to the model input: oriented, cropped, scaled to [0, 1], resized."""
    # Crop before scaling: a bright marker outside the breast must not set the maximum.
    arr = crop_to_breast(canonical(display, mirror))
    return np.clip(resize(rescale(arr), height, width), 0.0, 1.0)


def model_input_box(display: np.ndarray, source: Dataset, view: str) -> Box:
    """The region of `source` that `model_input` shows the model.

    Args:
        display: the source's displayed pixels at working resolution
            (`view_pixels(source, height)`, height = the model input's rows).
        source: the original image's header (Rows, orientation attributes).
        view: the view name; its first letter is the laterality ("R-CC").

    Returns:
        (top, bottom, left, right) in the source's own pixels, as stored (not mirrored).
    """
    mirror = chest_wall_is_right(source, view[0])
    top, bottom, left, right = breast_box(canonical(display, mirror))
    if mirror:  # the box is in the mirrored image: columns count from the other side
        left, right = display.shape[1] - right, display.shape[1] - left
    # block_mean halves rows and columns alike, dropping only a last odd row or column
    f = max(1, int(source.Rows) // display.shape[0])
    return top * f, bottom * f, left * f, right * f


def peak_location(heatmap: np.ndarray, source: Dataset, view: str, box: Box) -> tuple[float, float]:
    """(column, row) in the source's pixels of the centre of the heatmap's hottest cell.

    Args:
        heatmap: a map over the model input, [h, w] (any resolution).
        source: the original image's header (orientation attributes).
        view: the view name; its first letter is the laterality ("R-CC").
        box: `model_input_box` of the source: the model input is this region resized
            and, when the chest wall is stored on the right, mirrored.

    Returns:
        Continuous coordinates, (0, 0) the top left corner of the top left pixel
        (PS3.3 C.18.6.1.2).
    """
    rows, cols = heatmap.shape
    i, j = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    u, v = (j + 0.5) / cols, (i + 0.5) / rows
    if chest_wall_is_right(source, view[0]):
        u = 1.0 - u
    top, bottom, left, right = box
    return float(left + u * (right - left)), float(top + v * (bottom - top))


def radiograph_input(display: np.ndarray, height: int, width: int) -> np.ndarray:
    """Displayed pixels of a radiograph to the model input: the whole image, scaled and resized."""
    return np.clip(resize(rescale(display), height, width), 0.0, 1.0)


def task_input(display: np.ndarray, ds: Dataset, view: str, preprocessing: str, height: int,
               width: int) -> np.ndarray:
    """The model input of one view by a task's `preprocessing` (pipelines/tasks.yaml):
    `mammogram` (oriented by its laterality, cropped to the breast) or `radiograph`."""
    if preprocessing == "radiograph":
        return radiograph_input(display, height, width)
    return model_input(display, chest_wall_is_right(ds, view[0]), height, width)


def preprocess(ds: Dataset, laterality: str, height: int, width: int, *,
               decode_timeout_s: float | None = None) -> np.ndarray:
    """The model input of one view: float32 [height, width] in [0, 1].

    Args:
        ds: one MG image.
        laterality: "R" or "L".
        height: output rows.
        width: output columns.
        decode_timeout_s: decode compressed pixels in a child process killed after this
            many seconds (ingest sets it; None decodes in this process).

    Raises:
        InvalidStudy: the pixels cannot be decoded (in time) or are not one 2-D frame.
    """
    display = view_pixels(ds, height, decode_timeout_s=decode_timeout_s)
    return model_input(display, chest_wall_is_right(ds, laterality), height, width)
