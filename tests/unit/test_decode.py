"""Decoding with a time limit: a slow, crashing or failing decoder costs one file only."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
from dicom_builders import breast_pixels, mg_image
from pydicom.uid import JPEGLSLossless

from pipelines.errors import InvalidStudy
from pipelines.imaging.decode import decode, decode_with_timeout, pixel_array
from pipelines.imaging.preprocess import preprocess

H, W = 40, 32


# Fake decoders live at module level: they are pickled to the child process.
def slow_decoder(ds: object) -> np.ndarray:
    time.sleep(60)
    return np.zeros((2, 2))


def crashing_decoder(ds: object) -> np.ndarray:
    os.kill(os.getpid(), signal.SIGSEGV)  # what a codec bug looks like from outside
    return np.zeros((2, 2))


def exiting_decoder(ds: object) -> np.ndarray:
    os._exit(3)


def failing_decoder(ds: object) -> np.ndarray:
    raise ValueError("bad marker 0xFF00 in scan")


def image(**kw: object):  # type: ignore[no-untyped-def]
    return mg_image(breast_pixels(H, W), **kw)  # type: ignore[arg-type]


def test_the_child_returns_the_same_pixels_as_decoding_here() -> None:
    ds = image()
    np.testing.assert_array_equal(decode_with_timeout(ds, 60), pixel_array(ds))


def test_a_hanging_decoder_is_killed_and_named() -> None:
    ds = image(transfer_syntax=JPEGLSLossless)
    started = time.monotonic()
    with pytest.raises(InvalidStudy, match=r"1\.2\.840\.10008\.1\.2\.4\.80.*longer than 2 s"):
        decode_with_timeout(ds, 2, decoder=slow_decoder)
    assert time.monotonic() - started < 20  # not the decoder's 60 s


@pytest.mark.parametrize(("decoder", "why"), [(crashing_decoder, "crashed .killed by SIGSEGV"),
                                              (exiting_decoder, "crashed .exit status 3")])
def test_a_crashing_decoder_does_not_take_the_caller_down(decoder, why: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidStudy, match=why):
        decode_with_timeout(image(), 30, decoder=decoder)
    # and the next file still decodes
    assert decode_with_timeout(image(), 60).shape == (H, W)


def test_a_decoder_error_is_reported_with_the_transfer_syntax() -> None:
    with pytest.raises(InvalidStudy, match=r"1\.2\.840\.10008\.1\.2\.1\).*ValueError: bad marker"):
        decode_with_timeout(image(), 30, decoder=failing_decoder)
    with pytest.raises(InvalidStudy, match=r"ValueError: bad marker"):
        decode(image(), decoder=failing_decoder)


def test_preprocess_gives_the_same_input_with_and_without_the_child_process() -> None:
    ds = image(laterality="R")
    np.testing.assert_array_equal(preprocess(ds, "R", H, W, decode_timeout_s=60),
                                  preprocess(ds, "R", H, W))


def test_a_dataset_pydicom_cannot_pickle_is_still_decoded() -> None:
    """pydicom stores a LUT descriptor's value with a local function pickle refuses (seen on
    shipped test files); only the pixel module is sent to the child."""
    import pickle

    from pydicom.dataelem import DataElement

    ds = image()
    ds.add(DataElement(0x00283002, "US", [256, 0, 16]))  # LUT Descriptor
    with pytest.raises(Exception, match="pickle"):
        pickle.dumps(ds)
    np.testing.assert_array_equal(decode_with_timeout(ds, 60), pixel_array(ds))
