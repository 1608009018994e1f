"""Pixel decoding with a time limit: a hanging or crashing codec costs one file, not the batch.

pydicom hands compressed pixel data to C codecs (GDCM, OpenJPEG, libjpeg, CharLS). A
malformed codestream can make one of them loop forever or crash the process. Ingest
therefore decodes each file in a child process started from a forkserver (cheap, and safe
in a process that runs threads), waits at most `timeout_s`, and kills the child when it
overruns. The parent gets an array or an `InvalidStudy` naming the transfer syntax.
The child dies with the process that asked for it, even a SIGKILLed one (`die_with_parent`).
Native (not encapsulated) pixel data runs no codec, so it is decoded in the process.

Full-detector images are larger than the model needs: `decode_reduced` averages 2x2 blocks
(in the child, so only the small array crosses the pipe) until the next halving would go
below the rows asked for. Averaging stored values before the LUTs differs from averaging
displayed values only where the LUT bends inside one block, far below the model's scale.

As with any multiprocessing start method but fork, the child re-imports the program's main
module: a script calling this must keep its work under `if __name__ == "__main__":` (the
`radflow` console script, Airflow and pytest do).
"""

from __future__ import annotations

import functools
import multiprocessing
import pickle
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.errors import InvalidStudy, described
from pipelines.processes import die_with_parent

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from pydicom import Dataset

Decoder = Callable[["Dataset"], np.ndarray]

# Imported once by the forkserver, so each child starts with pydicom and the codecs loaded
# (about 0.5 s per file otherwise). A missing plugin is skipped by the forkserver.
PRELOAD = [
    __name__, "pydicom", "pydicom.pixels", "pydicom.pixels.decoders.base",
    "pydicom.pixels.decoders.gdcm", "pydicom.pixels.decoders.pylibjpeg",
    "pydicom.pixels.decoders.pillow", "pydicom.pixels.decoders.pyjpegls",
    "pydicom.pixels.decoders.rle", "gdcm", "openjpeg", "libjpeg", "rle", "jpeg_ls", "PIL.Image",
]


# What pydicom needs to decode pixel data: the Image Pixel module without palettes.
PIXEL_KEYWORDS = (
    "SamplesPerPixel", "PhotometricInterpretation", "PlanarConfiguration", "Rows", "Columns",
    "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "NumberOfFrames",
    "ExtendedOffsetTable", "ExtendedOffsetTableLengths", "PixelData", "FloatPixelData",
    "DoubleFloatPixelData",
)


def pixel_module(ds: Dataset) -> Dataset:
    """A dataset with only what decoding needs: small to pickle, and nothing that cannot be.

    Any other element (LUT descriptors, private tags, sequences) stays in the parent; some
    of pydicom's converted values cannot be pickled.
    """
    from pydicom import Dataset
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import UID

    out = Dataset()
    out.file_meta = FileMetaDataset()
    syntax = transfer_syntax(ds)
    if syntax != "unknown":
        out.file_meta.TransferSyntaxUID = UID(syntax)
    for keyword in PIXEL_KEYWORDS:
        if keyword in ds:
            element = ds[keyword]
            out.add_new(element.tag, element.VR, element.value)
    implicit, little = ds.original_encoding
    if implicit is not None and little is not None:
        out.set_original_encoding(implicit, little)
    return out


# The Image Pixel module's integers pydicom decodes with (each one value), and their range.
PIXEL_INTEGERS = {"Rows": (1, 65535), "Columns": (1, 65535), "BitsAllocated": (1, 64),
                  "BitsStored": (1, 64), "SamplesPerPixel": (1, 3), "PixelRepresentation": (0, 1)}
OPTIONAL_PIXEL_INTEGERS = {"HighBit": (0, 63), "PlanarConfiguration": (0, 1),
                           "NumberOfFrames": (1, 2**31 - 1)}


def check_pixel_module(ds: Dataset) -> None:
    """The attributes decoding needs are there, each one integer in its range.

    pydicom's decoders fail on a missing or malformed one with messages of every type; this
    names the attribute first.

    Raises:
        InvalidStudy: pixel data missing or empty, or an attribute missing, not one
            integer, out of its range, or BitsStored above BitsAllocated (named).
    """
    why = ""
    if not any(ds.get(k) for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        why = "PixelData missing or empty"
    for keyword, (low, high) in (PIXEL_INTEGERS | OPTIONAL_PIXEL_INTEGERS).items():
        value = ds.get(keyword)
        if why:
            break
        if value is None or value == "":
            why = f"{keyword} missing" if keyword in PIXEL_INTEGERS else ""
        elif not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            why = f"{keyword} must be one integer from {low} to {high}"
    if not why and int(ds.BitsStored) > int(ds.BitsAllocated):
        why = "BitsStored exceeds BitsAllocated"
    if not why and not str(ds.get("PhotometricInterpretation", "") or "").strip():
        why = "PhotometricInterpretation missing"
    if why:
        raise InvalidStudy(_failed(ds, f"{why} (Image Pixel module)"))


def transfer_syntax(ds: Dataset) -> str:
    """The transfer syntax UID of a dataset read from a file, or "unknown"."""
    return str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "unknown") or "unknown")


def pixel_array(ds: Dataset) -> np.ndarray:
    """The stored pixel values, decoded by pydicom and whichever plugin handles the syntax.

    Native unsigned pixels with unused high bits are read as a view on the file's bytes
    and masked only if some unused bit is set (pydicom would shift every pixel twice).
    """
    bits_allocated, bits_stored = int(ds.get("BitsAllocated", 0)), int(ds.get("BitsStored", 0))
    if is_native(ds) and int(ds.get("PixelRepresentation", 0)) == 0 \
            and 0 < bits_stored < bits_allocated and int(ds.get("SamplesPerPixel", 1)) == 1:
        from pydicom.pixels import get_decoder

        decoder = get_decoder(ds.file_meta.TransferSyntaxUID)
        # pydicom annotates these keywords as DecodeOptions (the TypedDict), not bool
        arr, _ = decoder.as_array(ds, correct_unused_bits=False, view_only=True)  # type: ignore[arg-type]
        valid = (1 << bits_stored) - 1
        return np.bitwise_and(arr, valid) if arr.size and int(arr.max()) > valid else arr
    return np.asarray(ds.pixel_array)


def decode(ds: Dataset, decoder: Decoder = pixel_array) -> np.ndarray:
    """Decode in this process (training, serving, tests).

    Raises:
        InvalidStudy: the pixel module is malformed (`check_pixel_module`), or the decoder
            failed; the message names the attribute or the transfer syntax.
    """
    check_pixel_module(ds)
    try:
        return decoder(ds)
    except _DECODER_ERRORS as exc:  # pydicom and its plugins raise many types for bad pixel data
        if isinstance(exc, _NOT_DECODER_ERRORS):
            raise
        raise InvalidStudy(_failed(ds, described(exc))) from exc


def is_native(ds: Dataset) -> bool:
    """Whether the pixel data is stored uncompressed (no codec runs to decode it)."""
    from pydicom.uid import UID

    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    return isinstance(syntax, UID) and syntax.is_transfer_syntax and not syntax.is_encapsulated


def block_mean(arr: np.ndarray, min_rows: int) -> np.ndarray:
    """`arr` with 2x2 blocks averaged while the result keeps at least `min_rows` rows.

    A 2-D integer image stays integer (rounded to nearest) so that the LUTs take it as
    stored values; an odd last row or column is dropped at each halving. Anything else
    (frames, colour, floats) is returned as is.
    """
    if arr.ndim != 2 or arr.dtype.kind not in "iu" or arr.shape[0] // 2 < min_rows:
        return arr
    # sums of 2x2 blocks, widened first: 16-bit values summed over up to 2^15 pixels fit
    acc = np.int64 if arr.dtype.itemsize > 2 else np.uint32 if arr.dtype.kind == "u" else np.int32
    total: np.ndarray[Any, Any] = arr
    count = 1
    while total.shape[0] // 2 >= min_rows and min(total.shape) >= 2:
        rows, cols = total.shape[0] // 2 * 2, total.shape[1] // 2 * 2
        total = (total[0:rows:2, 0:cols:2].astype(acc) + total[1:rows:2, 0:cols:2]
                 + total[0:rows:2, 1:cols:2] + total[1:rows:2, 1:cols:2])
        count *= 4
    return ((total + count // 2) // count).astype(arr.dtype)


def _reduced(decoder: Decoder, min_rows: int, ds: Dataset) -> np.ndarray:
    return block_mean(decoder(ds), min_rows)


def decode_reduced(ds: Dataset, min_rows: int, timeout_s: float | None = None,
                   decoder: Decoder = pixel_array) -> np.ndarray:
    """Stored pixels block-averaged down to at least `min_rows` rows (see `block_mean`).

    Args:
        ds: the dataset.
        min_rows: the fewest rows the result may have (it has up to twice as many).
        timeout_s: decode compressed pixel data in a child process with this time limit
            (None: in this process).
        decoder: a module-level (picklable) function from dataset to stored pixels.

    Raises:
        InvalidStudy: the pixel module is malformed (`check_pixel_module`), or the decoder
            raised, crashed, or overran the limit.
    """
    if timeout_s is None or is_native(ds):
        return block_mean(decode(ds, decoder), min_rows)
    return decode_with_timeout(ds, timeout_s, functools.partial(_reduced, decoder, min_rows))


def decode_with_timeout(ds: Dataset, timeout_s: float, decoder: Decoder = pixel_array) -> np.ndarray:
    """Decode in a child process killed after `timeout_s` seconds.

    Args:
        ds: the dataset (only its pixel module is pickled to the child).
        timeout_s: the wall-clock limit for the decode, including the child's start.
        decoder: a module-level (picklable) function from dataset to stored pixels.

    Returns:
        What `decoder` returned.

    Raises:
        InvalidStudy: the pixel module is malformed (`check_pixel_module`), or the decoder
            raised, crashed the child, or overran the limit.
    """
    check_pixel_module(ds)
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(decoder, pixel_module(ds), sender), daemon=True,
                        name="radflow-decode")
    try:
        child.start()
    except (pickle.PicklingError, AttributeError, TypeError) as exc:  # an unpicklable value
        receiver.close()
        sender.close()
        raise InvalidStudy(_failed(ds, f"cannot hand it to the decoder process: "
                                       f"{type(exc).__name__}")) from exc
    sender.close()  # the child holds the only writer: EOF on our side means it died
    try:
        if not receiver.poll(timeout_s):
            raise InvalidStudy(_failed(ds, f"decoding took longer than {timeout_s:g} s; "
                                           "the decoder was stopped"))
        try:
            status, payload = receiver.recv()
        except EOFError:
            child.join(5)
            raise InvalidStudy(
                _failed(ds, f"the decoder crashed ({_exit_reason(child.exitcode)})")) from None
    finally:
        receiver.close()
        if child.is_alive():
            child.kill()
        child.join(5)
        child.close()
    if status == "error":
        raise InvalidStudy(_failed(ds, str(payload)))
    return np.asarray(payload)


def _child(decoder: Decoder, ds: Dataset, sender: Connection) -> None:
    die_with_parent()  # a hanging codec must not outlive a killed ingest
    try:
        result: tuple[str, Any] = ("ok", decoder(ds))
    except _DECODER_ERRORS as exc:
        if isinstance(exc, _NOT_DECODER_ERRORS):
            raise
        result = ("error", described(exc))
    sender.send(result)
    sender.close()


# A codec written in Rust (pylibjpeg-rle) panics on some malformed frames: pyo3 raises its
# PanicException, a BaseException. Every exception of a decoder is a refusal, but these.
_DECODER_ERRORS = BaseException
_NOT_DECODER_ERRORS = (KeyboardInterrupt, SystemExit, GeneratorExit)


def _failed(ds: Dataset, why: str) -> str:
    return f"PixelData cannot be decoded (transfer syntax {transfer_syntax(ds)}): {why}"


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        import signal

        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"
