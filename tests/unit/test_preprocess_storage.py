"""Lake storage: uint16 keeps the model input to 1/131070; float16 loses bits where it is bright."""

from __future__ import annotations

import numpy as np

from pipelines.imaging.storage import from_lake, to_lake


def test_uint16_round_trip_is_finer_than_one_14_bit_level_everywhere() -> None:
    arr = np.linspace(0.0, 1.0, 2**14, dtype=np.float32)  # every 14-bit level
    stored = to_lake(arr)
    assert stored.dtype == np.uint16 and stored.nbytes == arr.size * 2
    back = from_lake(stored)
    assert back.dtype == np.float32
    assert float(np.abs(back - arr).max()) <= 0.5 / 65535 + 1e-7
    assert len(np.unique(stored)) == 2**14  # no two levels merged


def test_float16_merges_bright_14_bit_levels_which_is_why_it_is_not_used() -> None:
    arr = np.linspace(0.0, 1.0, 2**14, dtype=np.float32)
    assert len(np.unique(arr.astype(np.float16))) < 0.75 * 2**14


def test_old_float16_lake_files_still_read_and_values_are_clipped() -> None:
    old = np.array([0.0, 0.25, 1.0], dtype=np.float16)
    np.testing.assert_array_equal(from_lake(old), [0.0, 0.25, 1.0])
    np.testing.assert_array_equal(to_lake(np.array([-0.1, 1.2])), [0, 65535])
