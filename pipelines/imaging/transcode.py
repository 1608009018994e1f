"""Re-encode an uncompressed image into another transfer syntax (test data, benchmarks).

pydicom 3 encodes JPEG-LS (pyjpegls), JPEG 2000 (pylibjpeg-openjpeg) and RLE itself;
the JPEG processes, deflate and big endian come from dcmtk (`dcmcjpeg`, `dcmconv`), so
the decoders are also checked against files another implementation wrote.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.errors import PermanentError

if TYPE_CHECKING:
    from pydicom import Dataset

# transfer syntax UID -> (name, lossless, dcmtk command or None for pydicom's encoder)
SYNTAXES: dict[str, tuple[str, bool, list[str] | None]] = {
    "1.2.840.10008.1.2.4.50": ("jpeg-baseline-8bit", False, ["dcmcjpeg", "+eb", "+sr", "+q", "95"]),
    "1.2.840.10008.1.2.4.51": ("jpeg-extended-12bit", False, ["dcmcjpeg", "+ee", "+sr", "+q", "95"]),
    "1.2.840.10008.1.2.4.57": ("jpeg-lossless-p14", True, ["dcmcjpeg", "+el", "+sv", "6"]),
    "1.2.840.10008.1.2.4.70": ("jpeg-lossless-sv1", True, ["dcmcjpeg", "+e1"]),
    "1.2.840.10008.1.2.4.80": ("jpeg-ls-lossless", True, None),
    "1.2.840.10008.1.2.4.81": ("jpeg-ls-near-lossless", False, None),
    "1.2.840.10008.1.2.4.90": ("jpeg2000-lossless", True, None),
    "1.2.840.10008.1.2.4.91": ("jpeg2000", False, None),
    "1.2.840.10008.1.2.5": ("rle-lossless", True, None),
    "1.2.840.10008.1.2.1.99": ("deflated-explicit-le", True, ["dcmconv", "+td"]),
    "1.2.840.10008.1.2.2": ("explicit-big-endian", True, ["dcmconv", "+tb"]),
}
# Syntaxes whose JPEG process limits the stored bit depth.
MAX_BITS = {"1.2.840.10008.1.2.4.50": 8, "1.2.840.10008.1.2.4.51": 12}


def is_lossless(syntax: str) -> bool:
    return SYNTAXES[syntax][1]


def encode_file(source: Path, target: Path, syntax: str) -> None:
    """Write `source` (uncompressed DICOM) to `target` in `syntax`.

    Raises:
        PermanentError: unknown syntax, a missing dcmtk tool, or the encoder failed.
    """
    import pydicom

    if syntax not in SYNTAXES:
        raise PermanentError(f"no encoder for transfer syntax {syntax}")
    command = SYNTAXES[syntax][2]
    if command is None:
        ds = pydicom.dcmread(source)
        kwargs = _pydicom_options(syntax)
        try:
            ds.compress(syntax, **kwargs)  # type: ignore[arg-type]
        except Exception as exc:
            raise PermanentError(f"pydicom cannot encode {syntax}: {exc}") from exc
        ds.save_as(target, enforce_file_format=True)
        return
    if shutil.which(command[0]) is None:
        raise PermanentError(f"{command[0]} (dcmtk) is needed to encode {syntax}")
    done = subprocess.run([*command, str(source), str(target)], capture_output=True, text=True,
                          timeout=300)
    if done.returncode != 0:
        raise PermanentError(f"{command[0]} failed for {syntax}: {done.stderr.strip()[-500:]}")


def transcode(ds: Dataset, syntax: str) -> Dataset:
    """A copy of `ds` (uncompressed, with file meta) encoded in `syntax`, read back by pydicom."""
    import pydicom

    with tempfile.TemporaryDirectory(prefix="radflow-transcode-") as tmp:
        source, target = Path(tmp) / "in.dcm", Path(tmp) / "out.dcm"
        ds.save_as(source, enforce_file_format=True)
        encode_file(source, target, syntax)
        return pydicom.dcmread(target)


def with_bits_stored(ds: Dataset, bits: int) -> Dataset:
    """A copy of an uncompressed image requantized to `bits` (8 also makes it 8-bit allocated).

    The JPEG baseline and extended processes hold 8 and 12 bits: this is the source they
    can encode losslessly-but-for-the-DCT, and the reference to compare their output with.
    """
    import copy

    import numpy as np

    out = copy.deepcopy(ds)
    shift = int(ds.BitsStored) - bits
    if shift <= 0:
        return out
    pixels = np.asarray(ds.pixel_array) >> shift
    allocated = 8 if bits <= 8 else 16
    out.BitsAllocated, out.BitsStored, out.HighBit = allocated, bits, bits - 1
    out.PixelData = pixels.astype(np.uint8 if allocated == 8 else "<u2").tobytes()
    out["PixelData"].VR = "OB" if allocated == 8 else "OW"
    if "WindowCenter" in out and "WindowWidth" in out:
        out.WindowCenter = float(out.WindowCenter) / 2**shift
        out.WindowWidth = max(float(out.WindowWidth) / 2**shift, 2.0)
    return out


def _pydicom_options(syntax: str) -> dict[str, object]:
    if syntax == "1.2.840.10008.1.2.4.81":
        return {"jls_error": 2}
    if syntax == "1.2.840.10008.1.2.4.91":
        return {"j2k_psnr": [60.0]}
    return {}
