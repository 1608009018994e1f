"""Deterministic randomness: every random choice derives from a stable hash of its inputs.

Python's `hash()` is salted per process, so seeds and UIDs come from SHA-256 over the
textual parts instead; the same parts give the same generator and UIDs on every machine.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pydicom.uid import UID

_SEPARATOR = "\x1f"


def stable_seed(*parts: object) -> int:
    """A 128-bit integer seed derived from the parts' text.

    Args:
        *parts: values whose `str()` identifies the random stream (seed, site, date, ...).

    Returns:
        The first 16 bytes of the SHA-256 digest as an unsigned integer.
    """
    text = _SEPARATOR.join(str(part) for part in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:16], "big")


def rng_for(*parts: object) -> np.random.Generator:
    """A numpy Generator seeded from the parts (see `stable_seed`)."""
    return np.random.default_rng(stable_seed(*parts))


def uid_for(*parts: object) -> UID:
    """A DICOM UID that is a pure function of the parts.

    Args:
        *parts: values identifying the object (for example seed, site, date, exam, "study").

    Returns:
        A UID under pydicom's root, derived from SHA-512 of the parts.
    """
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=["radflow-synth", *(str(part) for part in parts)])
