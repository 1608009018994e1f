"""Heatmap overlays: one RGB secondary-capture image per view (highdicom SCImage).

The image shown is the model input (what the score came from), in grey, with the
heatmap upsampled to it and blended from red (a region's malignancy probability at
`floor`) to yellow (probability 1); regions below `floor` stay grey. No text is drawn
into the pixels (nothing identifying is burned in).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.errors import PermanentError
from pipelines.screening.sr import copy_patient_study, scrub

if TYPE_CHECKING:
    import numpy as np
    from pydicom import Dataset

    from pipelines.screening.writeback import ViewFinding

FLOOR = 0.3       # heatmap probability below which a region is not tinted
MAX_ALPHA = 0.6   # opacity of the colour at probability 1


def upsample(heatmap: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Bilinear resize of a float heatmap to [rows, cols], values kept in [0, 1]."""
    import numpy as np
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(heatmap, dtype=np.float32), mode="F")
    out = np.asarray(img.resize((cols, rows), Image.Resampling.BILINEAR), dtype=np.float32)
    return np.clip(out, 0.0, 1.0)


def overlay(image: np.ndarray, heatmap: np.ndarray, floor: float = FLOOR,
            max_alpha: float = MAX_ALPHA) -> np.ndarray:
    """The model input in grey with the heatmap blended in red-to-yellow: uint8 [H, W, 3].

    Args:
        image: float [H, W] in [0, 1].
        heatmap: float [h, w] in [0, 1] (any size; upsampled to [H, W]).
        floor: probability where the tint starts (alpha 0).
        max_alpha: tint opacity at probability 1.
    """
    import numpy as np

    grey = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0) * 255.0
    heat = upsample(heatmap, *grey.shape)
    strength = np.clip((heat - floor) / max(1e-6, 1.0 - floor), 0.0, 1.0)
    alpha = (max_alpha * strength)[..., None]
    colour = np.stack([np.full_like(strength, 255.0), 255.0 * strength,
                       np.zeros_like(strength)], axis=-1)
    rgb = grey[..., None] * (1.0 - alpha) + colour * alpha
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def orientation(source: Dataset) -> list[str]:
    """PatientOrientation of the overlay: the source's, with the row direction "A" when
    the source's is anterior/posterior (mammography, mirrored to chest wall left); empty
    when the source has none (type 2)."""
    value = source.get("PatientOrientation")
    if value is None or isinstance(value, str) or len(value) != 2:
        return []
    row, col = str(value[0]), str(value[1])
    return ["A" if row[:1].upper() in ("A", "P") else row, col]


def build_sc(view: ViewFinding, *, series_uid: str, sop_uid: str, instance_number: int,
             series_description: str, model_version: str, series_number: int = 9002) -> Dataset:
    """The heatmap overlay of one view as an RGB Secondary Capture in the source's study.

    References the source image (SourceImageSequence) and says how it was derived.

    Raises:
        PermanentError: highdicom refuses the image; the message names the view.
    """
    import highdicom as hd
    from pydicom import Dataset as _Dataset

    src = view.source
    pixels = overlay(view.image, view.heatmap)
    try:
        sc = hd.sc.SCImage(
            pixel_array=pixels,
            photometric_interpretation="RGB",
            bits_allocated=8,
            coordinate_system="PATIENT",
            patient_orientation=("A", "F"),  # replaced below by the source's own
            study_instance_uid=str(src.StudyInstanceUID),
            series_instance_uid=series_uid,
            series_number=series_number,
            sop_instance_uid=sop_uid,
            instance_number=instance_number,
            manufacturer="radflow",
            series_description=series_description,
            software_versions=str(model_version)[:64],
        )
    except (ValueError, TypeError) as exc:
        raise PermanentError(f"heatmap image of view {view.view} could not be built: "
                             f"{scrub(str(exc), src)}") from None
    copy_patient_study(sc, src)
    sc.PatientOrientation = orientation(src)
    sc.Laterality = ""  # type 2C: the series holds both sides; each source says its own
    sc.BurnedInAnnotation = "NO"
    sc.ImageComments = f"{view.view}: heatmap of model {model_version}"[:10240]
    sc.DerivationDescription = (
        f"{view.view} model input (cropped, resized, chest wall left for mammography) with "
        f"the malignancy heatmap: tinted from probability {FLOOR:g} (red) to 1 (yellow)"
    )[:1024]
    ref = _Dataset()
    ref.ReferencedSOPClassUID = src.SOPClassUID
    ref.ReferencedSOPInstanceUID = src.SOPInstanceUID
    sc.SourceImageSequence = [ref]
    sc.ReferencedSeriesSequence = [_series_ref(src)]
    return sc


def _series_ref(src: Dataset) -> Dataset:
    from pydicom import Dataset as _Dataset

    inst = _Dataset()
    inst.ReferencedSOPClassUID = src.SOPClassUID
    inst.ReferencedSOPInstanceUID = src.SOPInstanceUID
    series = _Dataset()
    series.SeriesInstanceUID = src.SeriesInstanceUID
    series.ReferencedInstanceSequence = [inst]
    return series

