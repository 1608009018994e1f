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
from pipelines.imaging.decode import (
    block_mean,
    decode,
    decode_reduced,
    decode_with_timeout,
    is_native,
    pixel_array,
)
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


def compressed_image(**kw: object):  # type: ignore[no-untyped-def]
    ds = image(**kw)
    ds.compress(JPEGLSLossless)
    return ds


def test_preprocess_gives_the_same_input_with_and_without_the_child_process() -> None:
    ds = compressed_image(laterality="R")
    assert not is_native(ds)
    np.testing.assert_array_equal(preprocess(ds, "R", H, W, decode_timeout_s=60),
                                  preprocess(ds, "R", H, W))


def test_native_pixels_are_decoded_here_and_compressed_ones_in_the_child() -> None:
    native = image()
    compressed = compressed_image()
    assert is_native(native) and not is_native(compressed)
    with pytest.raises(InvalidStudy, match="longer than 2 s"):
        decode_reduced(compressed, H // 2, 2, decoder=slow_decoder)
    reduced = decode_reduced(native, H // 2, 2)
    assert reduced.shape == (H // 2, W // 2)
    np.testing.assert_array_equal(decode_reduced(compressed, H // 2, 60), reduced)


def test_block_mean_averages_2x2_blocks_down_to_the_rows_asked_for() -> None:
    arr = np.arange(8 * 6, dtype=np.uint16).reshape(8, 6) * 10
    half = block_mean(arr, 4)
    assert half.dtype == np.uint16 and half.shape == (4, 3)
    expected = (arr[0::2, 0::2].astype(float) + arr[1::2, 0::2] + arr[0::2, 1::2] + arr[1::2, 1::2]) / 4
    np.testing.assert_array_equal(half, np.round(expected).astype(np.uint16))
    quarter = block_mean(arr, 2)
    assert quarter.shape == (2, 1)  # the odd third column is dropped at the second halving
    assert quarter[0, 0] == round(arr[0:4, 0:4].mean())
    assert block_mean(arr, 5) is arr  # halving would go below 5 rows
    signed = np.array([[-3, -1], [-2, -2]], dtype=np.int16)
    assert block_mean(signed, 1).tolist() == [[-2]]
    assert block_mean(arr.astype(np.float32), 1).shape == (8, 6)  # floats are left alone


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


def test_native_pixels_with_set_unused_bits_are_masked_like_pydicom_does() -> None:
    clean = image()  # 12 bits stored in 16
    stored = np.frombuffer(clean.PixelData, dtype="<u2").reshape(H, W)
    dirty = image()
    dirty.PixelData = (stored | 0xB000).astype("<u2").tobytes()  # overlay bits in the unused top
    np.testing.assert_array_equal(pixel_array(dirty), stored)
    np.testing.assert_array_equal(pixel_array(dirty), np.asarray(dirty.pixel_array))
    np.testing.assert_array_equal(pixel_array(clean), np.asarray(clean.pixel_array))
