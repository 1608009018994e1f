"""Every transfer syntax pydicom decodes with its plugins gives the model the same input.

A synthetic mammogram (12-bit MONOCHROME2 and 14-bit MONOCHROME1 sites) is encoded by
pydicom's encoders or dcmtk, read back, and preprocessed: identical to the uncompressed
original for lossless syntaxes, close for lossy ones. JPEG baseline and extended hold 8
and 12 bits, so their reference is the original requantized to that depth.
"""

from __future__ import annotations

import shutil
from functools import cache

import numpy as np
import pytest
from pydicom import Dataset

from pipelines.imaging.decode import decode_with_timeout, pixel_array
from pipelines.imaging.preprocess import preprocess
from pipelines.imaging.transcode import MAX_BITS, SYNTAXES, is_lossless, transcode, with_bits_stored
from pipelines.synth.generate import iter_exams

H, W = 64, 48
pytestmark = pytest.mark.skipif(shutil.which("dcmcjpeg") is None, reason="dcmtk is not installed")


@cache
def original(site: str) -> tuple[str, Dataset]:
    """(view, dataset) of one small synthetic view of the site."""
    exam = next(iter_exams(1, "2026-10-01", site, 3, scale=0.05))
    view = exam.instances[0]  # R-CC: also checks the mirroring
    return view.name, view.dataset


def source(site: str, syntax: str) -> tuple[str, Dataset]:
    view, ds = original(site)
    return view, (with_bits_stored(ds, MAX_BITS[syntax]) if syntax in MAX_BITS else ds)


@pytest.mark.parametrize("site", ["east", "north"])  # 12-bit MONOCHROME2, 14-bit MONOCHROME1
@pytest.mark.parametrize("syntax", list(SYNTAXES), ids=[v[0] for v in SYNTAXES.values()])
def test_preprocessed_pixels_match_the_uncompressed_original(syntax: str, site: str) -> None:
    view, ds = source(site, syntax)
    encoded = transcode(ds, syntax)
    assert encoded.file_meta.TransferSyntaxUID == syntax
    reference = preprocess(ds, view[0], H, W)
    got = preprocess(encoded, view[0], H, W)
    if is_lossless(syntax):
        np.testing.assert_array_equal(pixel_array(encoded), pixel_array(ds))
        np.testing.assert_array_equal(got, reference)
    else:
        # Lossy: the stored values differ, so the crop box may move by a pixel and the
        # min-max scaling by a little; the image must stay the same to the eye.
        assert not np.array_equal(pixel_array(encoded), pixel_array(ds))
        assert float(np.abs(got - reference).mean()) < 0.03
        assert np.corrcoef(got.ravel(), reference.ravel())[0, 1] > 0.98


@pytest.mark.parametrize("syntax", list(SYNTAXES), ids=[v[0] for v in SYNTAXES.values()])
def test_the_time_limited_decoder_handles_every_syntax(syntax: str) -> None:
    _, ds = source("east", syntax)
    encoded = transcode(ds, syntax)
    np.testing.assert_array_equal(decode_with_timeout(encoded, 60), pixel_array(encoded))
