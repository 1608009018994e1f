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
# Applied as one number (the window attributes may hold several; the first is applied).
SINGLE_VALUED = ("RescaleSlope", "RescaleIntercept")
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
        raise InvalidStudy(f"expected a single-frame 2-D image of integers (NumberOfFrames 1, "
                           f"SamplesPerPixel 1), got {raw.dtype} {raw.shape}")
    if raw.size and (int(raw.min()) < INT32.min or int(raw.max()) > INT32.max):
        raise InvalidStudy(f"stored pixel values of {raw.dtype} exceed the int32 range")
    return StoredView(raw.astype(np.int32), display_attributes(ds), chest_wall_is_right(ds, laterality))


def display_attributes(ds: Dataset) -> dict[str, Any]:
    """What the display step reads of `ds` (DISPLAY_ATTRIBUTES), as JSON-ready values, checked.

    Ingest displays `dataset_from` these too, so that a view is displayed from the same
    checked values in ingest, training and on Triton.

    Raises:
        InvalidStudy: an attribute cannot be read as its kind, or is invalid (see
            `check_attributes`); the message names it, never its value.
    """
    plain: dict[str, Any] = {}
    for keyword in DISPLAY_ATTRIBUTES:
        if keyword not in ds:
            continue
        try:
            plain[keyword] = _plain(ds, keyword)
        except InvalidStudy:
            raise
        except Exception as exc:  # a value pydicom kept as read (WARN mode): str, bytes, lists
            raise InvalidStudy(f"{keyword} cannot be read as {DISPLAY_ATTRIBUTES[keyword]} "
                               f"({type(exc).__name__})") from exc
    return check_attributes(plain)


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
        if keyword in SINGLE_VALUED and isinstance(value, list):
            raise InvalidStudy(f"{keyword} must be one number")
        if vr == "SQ":
            _check_lut(keyword, value)
    _check_ranges(attributes)
    return attributes


# The LUT entry sizes (third value of LUTDescriptor) pydicom applies: PS3.3 C.11.1.1.1
# (Modality LUT: 8 or 16) and C.11.2.1.1 (VOI LUT: 8, 10-16).
LUT_BITS = {"ModalityLUTSequence": (8, 16), "VOILUTSequence": (8, *range(10, 17))}


def _check_lut(keyword: str, value: Any) -> None:
    """A LUT sequence: items holding a LUTDescriptor (3 integers, of a bit depth pydicom
    applies) and at least as many LUTData integers as it describes, each within that depth."""
    shape = f"{keyword} must be a list of {{LUTDescriptor: 3 integers, LUTData: integers}}"
    if not isinstance(value, list) or not value:
        raise InvalidStudy(shape)
    for item in value:
        if not (isinstance(item, dict) and set(item) == set(LUT_KEYS) and _ints(item["LUTData"])
                and _ints(item["LUTDescriptor"], 3)):
            raise InvalidStudy(shape)
        entries, _, bits = item["LUTDescriptor"]
        data = item["LUTData"] if isinstance(item["LUTData"], list) else [item["LUTData"]]
        if bits not in LUT_BITS[keyword]:
            raise InvalidStudy(f"{keyword} LUTDescriptor gives {bits} bits per entry: "
                               f"{', '.join(map(str, LUT_BITS[keyword]))} are applied")
        if len(data) < (entries or 2**16) or entries < 0:
            raise InvalidStudy(f"{keyword} LUTData holds {len(data)} entries, its LUTDescriptor {entries}")
        if data and (min(data) < 0 or max(data) >= 2 ** (8 if bits == 8 else 16)):
            raise InvalidStudy(f"{keyword} LUTData values exceed {bits} bits")


def _check_ranges(attributes: dict[str, Any]) -> None:
    """The numbers the display step computes with, within what it can apply."""
    if not 1 <= attributes["BitsStored"] <= 32:
        raise InvalidStudy("BitsStored must be 1 to 32")
    if attributes["PixelRepresentation"] not in (0, 1):
        raise InvalidStudy("PixelRepresentation must be 0 or 1")
    width = attributes.get("WindowWidth")
    if width is not None and "VOILUTSequence" not in attributes:
        widths = width if isinstance(width, list) else [width]
        linear = attributes.get("VOILUTFunction") in (None, "LINEAR")
        if any(w < 1 if linear else w <= 0 for w in widths):
            raise InvalidStudy(f"WindowWidth must be {'at least 1' if linear else 'above 0'} "
                               f"for VOILUTFunction {attributes.get('VOILUTFunction') or 'LINEAR'}")


def dataset_from(attributes: dict[str, Any]) -> Dataset:
    """A Dataset holding only the (checked) display attributes, as the display step reads them."""
    from pydicom import Dataset

    ds = Dataset()
    for keyword, value in attributes.items():
        if value is None:  # an empty element is read as absent (pydicom would apply None)
            continue
        vr = DISPLAY_ATTRIBUTES[keyword]
        if vr == "SQ":
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
