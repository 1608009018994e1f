"""Patient-level split assignment: seeded, stratified, and sticky across rebuilds.

A patient keeps the split it had in the previous version; only patients never seen before
are assigned, so a rebuild with new exams never moves an old patient (the test split stays
a test split). New patients are taken in a seeded pseudo-random order and each goes to the
split furthest below its target share within its stratum (patients with / without a
positive exam), which keeps class balance without reshuffling anyone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import pandas as pd

from pipelines.layout import SPLITS


def patient_strata(frame: pd.DataFrame) -> pd.Series:
    """Per patient: True if any of the patient's views is labelled positive."""
    return frame.groupby("patient_id").label.max().astype(int).astype(bool)


def assign_splits(positive: pd.Series, previous: Mapping[str, str], fractions: Mapping[str, float],
                  seed: int) -> dict[str, str]:
    """The split of every patient in `positive` (index: patient id, value: stratum).

    Args:
        positive: per patient, whether the patient has a positive exam.
        previous: patient -> split of the previous dataset version (kept as is).
        fractions: target share of patients per split (train, val, test).
        seed: orders the new patients; the same inputs give the same answer.
    """
    out = {p: previous[p] for p in positive.index if p in previous and previous[p] in SPLITS}
    for stratum in (True, False):
        members = positive.index[positive == stratum]
        counts = {s: sum(out.get(p) == s for p in members) for s in SPLITS}
        for patient in sorted((p for p in members if p not in out), key=lambda p: _rank(seed, p)):
            total = sum(counts.values()) + 1
            pick = max(SPLITS, key=lambda s: (round(fractions[s] * total - counts[s], 9), -counts[s]))
            counts[pick] += 1
            out[patient] = pick
    return out


def _rank(seed: int, patient: str) -> str:
    # Pseudonyms are random (not derived from identifiers), so hashing them leaks nothing.
    return hashlib.sha256(f"{seed}:{patient}".encode()).hexdigest()
