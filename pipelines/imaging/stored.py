"""Preprocessing split at the Triton boundary: stored pixels travel, the display step is served.

The client decodes and block-averages the stored values exactly as `preprocess` does
(`stored_pixels`) and sends them with the few attributes the display step reads and the
mirror flag (`serving_request`). The server (the Python-backend model mammo_preprocessing)
rebuilds a Dataset holding only those attributes and runs `display_pixels` and
`model_input` from preprocess.py, the code training uses, so that
`model_input_from_stored(*serving_request(ds, lat, h), h, w)` equals `preprocess(ds, lat,
h, w)` bit for bit. Nothing identifying crosses: the attributes are picked from an
allow-list of numbers, lookup tables and enumerated code strings, checked on both sides.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.errors import InvalidStudy
from pipelines.imaging.preprocess import chest_wall_is_right, display_pixels, model_input, stored_pixels

if TYPE_CHECKING:
    from pydicom import Dataset

# What pydicom's apply_modality_lut, apply_voi_lut (window or VOI LUT) and display_pixels
# read, keyword -> VR. Only the first item of a LUT sequence is used, and only its
# LUTDescriptor and LUTData. RescaleType, BitsAllocated and the explanations are not read.
DISPLAY_ATTRIBUTES: dict[str, str] = {
    "PhotometricInterpretation": "CS", "BitsStored": "US", "PixelRepresentation": "US",
    "RescaleSlope": "DS", "RescaleIntercept": "DS", "ModalityLUTSequence": "SQ",
    "WindowCenter": "DS", "WindowWidth": "DS", "VOILUTFunction": "CS", "VOILUTSequence": "SQ",
}
REQUIRED = ("PhotometricInterpretation", "BitsStored", "PixelRepresentation")
# Code strings are enumerated, so that no free text (and no identifier) can ride along.
CODES = {"PhotometricInterpretation": ("MONOCHROME1", "MONOCHROME2"),
         "VOILUTFunction": ("LINEAR", "LINEAR_EXACT", "SIGMOID")}
LUT_KEYS = ("LUTDescriptor", "LUTData")
INT32 = np.iinfo(np.int32)


@dataclasses.dataclass(frozen=True)
class StoredView:
    """One view as sent to Triton: stored values int32 [rows, cols], display attributes
    (JSON-ready, PHI-free), and whether to mirror it (chest wall stored on the right)."""

    pixels: np.ndarray
    attributes: dict[str, Any]
    mirror: bool

    def __iter__(self) -> Iterator[Any]:
        """Unpacks as the ensemble's inputs: pixels, attributes, mirror."""
        return iter((self.pixels, self.attributes, self.mirror))

    def attributes_json(self) -> str:
        """The attributes as the ensemble's `attributes` input."""
        return json.dumps(self.attributes, sort_keys=True, allow_nan=False)


def serving_request(ds: Dataset, laterality: str, height: int, *,
                    decode_timeout_s: float | None = None) -> StoredView:
    """The client half of `preprocess`: decoded, reduced stored pixels and what displays them.

    Args:
        ds: one MG image.
        laterality: "R" or "L".
        height: rows of the model input (sets the working resolution, as in `preprocess`).
        decode_timeout_s: as in `preprocess`.

    Raises:
        InvalidStudy: the pixels cannot be decoded, are not one 2-D integer frame, or a
            display attribute is invalid (the message names the attribute).
    """
    raw = stored_pixels(ds, height, decode_timeout_s=decode_timeout_s)
    if raw.ndim != 2 or raw.dtype.kind not in "iu":
        raise InvalidStudy(f"expected a single-frame 2-D image of integers, got {raw.dtype} {raw.shape}")
    if raw.size and (int(raw.min()) < INT32.min or int(raw.max()) > INT32.max):
        raise InvalidStudy(f"stored pixel values of {raw.dtype} exceed the int32 range")
    attributes = check_attributes({k: _plain(ds, k) for k in DISPLAY_ATTRIBUTES if k in ds})
    return StoredView(raw.astype(np.int32), attributes, chest_wall_is_right(ds, laterality))


def model_input_from_stored(pixels: np.ndarray, attributes: dict[str, Any], mirror: bool,
                            height: int, width: int) -> np.ndarray:
    """The server half of `preprocess`: float32 [height, width] in [0, 1].

    Raises:
        InvalidStudy: pixels not 2-D integers, or the attributes invalid (named).
    """
    raw = np.asarray(pixels)
    if raw.ndim != 2 or raw.dtype.kind not in "iu":
        raise InvalidStudy(f"pixels must be 2-D stored integer values [rows, cols], "
                           f"got {raw.dtype} {list(raw.shape)}")
    ds = dataset_from(check_attributes(attributes))
    return model_input(display_pixels(ds, raw), bool(mirror), height, width)


def parse_attributes(text: str | bytes) -> dict[str, Any]:
    """The `attributes` JSON of a request, checked (see `check_attributes`)."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidStudy(f"attributes are not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidStudy(f"attributes must be a JSON object, got {type(value).__name__}")
    return check_attributes(value)


def check_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """`attributes` if they hold only allowed keywords with values of their kind.

    Raises:
        InvalidStudy: naming the unknown, missing or malformed keyword (never its value).
    """
    unknown = sorted(set(attributes) - set(DISPLAY_ATTRIBUTES))
    if unknown:
        raise InvalidStudy(f"attributes outside the display allow-list: {', '.join(unknown)}")
    for keyword in REQUIRED:
        if attributes.get(keyword) is None:
            raise InvalidStudy(f"attributes lack {keyword}")
    for keyword, value in attributes.items():
        vr = DISPLAY_ATTRIBUTES[keyword]
        if value is None:  # an empty element: present, read as absent
            continue
        if vr == "CS" and value not in CODES[keyword]:
            raise InvalidStudy(f"{keyword} must be one of {', '.join(CODES[keyword])}")
        if vr == "US" and not _ints(value, 1):
            raise InvalidStudy(f"{keyword} must be an integer")
        if vr == "DS" and not _numbers(value):
            raise InvalidStudy(f"{keyword} must be a finite number or a list of them")
        if vr == "SQ" and not (isinstance(value, list) and all(
                isinstance(item, dict) and set(item) <= set(LUT_KEYS) and _ints(item.get("LUTData", 0))
                and _ints(item.get("LUTDescriptor", [0, 0, 0]), 3) for item in value)):
            raise InvalidStudy(f"{keyword} must be a list of {{LUTDescriptor: 3 integers, "
                               "LUTData: integers}")
    return attributes


def dataset_from(attributes: dict[str, Any]) -> Dataset:
    """A Dataset holding only the (checked) display attributes, as the display step reads them."""
    from pydicom import Dataset

    ds = Dataset()
    for keyword, value in attributes.items():
        vr = DISPLAY_ATTRIBUTES[keyword]
        if vr == "SQ" and value is not None:
            value = [_lut_item(item) for item in value]
        ds.add_new(keyword, vr, value)
    return ds


def _lut_item(values: dict[str, Any]) -> Dataset:
    from pydicom import Dataset

    item = Dataset()
    if "LUTDescriptor" in values:  # "US or SS": signed when the first mapped value is negative
        descriptor = values["LUTDescriptor"]
        item.add_new("LUTDescriptor", "SS" if min(descriptor) < 0 else "US", descriptor)
    if "LUTData" in values:
        item.add_new("LUTData", "US", values["LUTData"])
    return item


def _plain(ds: Dataset, keyword: str) -> Any:
    """An element's value as JSON: str, int, float, lists of them, LUT items, or None."""
    element, vr = ds[keyword], DISPLAY_ATTRIBUTES[keyword]
    value = element.value
    if value is None or value == "" or (vr == "SQ" and len(value) == 0):
        return None
    if vr == "SQ":  # pydicom reads the first item only
        item = value[0]
        out: dict[str, Any] = {}
        if "LUTDescriptor" in item:
            out["LUTDescriptor"] = [int(v) for v in item.LUTDescriptor]
        if "LUTData" in item:
            out["LUTData"] = _lut_data(ds, item)
        return [out]
    convert: Any = {"CS": str, "US": int, "DS": float}[vr]
    return [convert(v) for v in value] if element.VM > 1 else convert(value)


def _lut_data(ds: Dataset, item: Dataset) -> int | list[int]:
    """LUTData as integers; OW bytes unpacked as pydicom does (16-bit, the file's byte order)."""
    value = item["LUTData"].value
    if not isinstance(value, bytes):
        return [int(v) for v in value] if item["LUTData"].VM > 1 else int(value)
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    little = syntax.is_little_endian if syntax is not None else ds.original_encoding[1]
    if little is None:
        raise InvalidStudy("LUTData is OW of unknown byte order (no transfer syntax)")
    entries = int(item.LUTDescriptor[0]) or 2**16
    if len(value) < 2 * entries:
        raise InvalidStudy(f"LUTData holds {len(value) // 2} entries, its descriptor {entries}")
    return [int(v) for v in np.frombuffer(value, "<u2" if little else ">u2", count=entries)]


def _ints(value: Any, count: int | None = None) -> bool:
    values = value if isinstance(value, list) and count != 1 else [value]
    return (count is None or len(values) == count) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in values)


def _numbers(value: Any) -> bool:
    values = value if isinstance(value, list) and value else [value]
    return all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
               for v in values)
