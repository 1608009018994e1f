"""The night's drift assessment: every feature of the night against the champion's reference.

Five families of tests, all on exams (never views, which are correlated within an exam),
except the artifact rates, which QC counts per view:

- metadata: chi-square on device identity columns, Kolmogorov-Smirnov on acquisition numbers;
- image: Kolmogorov-Smirnov on the model-input image statistics;
- embedding: Kolmogorov-Smirnov on every embedding dimension;
- prediction: Kolmogorov-Smirnov and PSI on the exam score, a binomial test of the flag rate;
- qc: one-sided Fisher test of each device's artifact rate per QC code against its history.

All p-values of the night are then adjusted together (Benjamini-Hochberg), so a night with
~90 tests does not drift by chance; PSI is reported against its limit but never decides.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from pipelines.features import CATEGORICAL, IMAGE_STATS, NUMERIC, embedding_columns
from pipelines.monitoring import stats
from pipelines.monitoring.records import FAMILIES, DriftTest, NightStatus

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

QC_COLUMNS = ("device", "code", "views", "flagged")


def assess(
    reference: pd.DataFrame,
    night: pd.DataFrame,
    *,
    operating_point: float,
    expected_flag_rate: float,
    qc_night: pd.DataFrame,
    qc_baseline: pd.DataFrame,
    alpha: float,
    psi_max: float,
) -> list[DriftTest]:
    """Every drift test of the night, corrected together and decided.

    Args:
        reference: one row per exam of the reference (the champion's validation exams),
            columns as built by pipelines.features.
        night: one row per exam of the night, same columns.
        operating_point: score at or above which an exam is flagged.
        expected_flag_rate: the share of exams the reference flags at that point.
        qc_night: the night's views and flagged views per device and QC code (columns
            device, code, views, flagged).
        qc_baseline: the same, summed over each device's history.
        alpha: q-value below which a test drifted.
        psi_max: PSI above which the score's PSI is reported as drifted.

    Returns:
        The tests that could be run (a column missing from either frame, or without values,
        is skipped), with q-values and verdicts.

    Raises:
        ValueError: a QC frame lacks one of its columns.
    """
    tests = [
        *_categorical("metadata", CATEGORICAL, reference, night),
        *_numeric("metadata", NUMERIC, reference, night),
        *_numeric("image", IMAGE_STATS, reference, night),
        *_numeric("embedding", _shared_embedding(reference, night), reference, night),
        *_prediction(reference, night, operating_point, expected_flag_rate),
        *_qc(qc_night, qc_baseline),
    ]
    corrected = stats.correct(tests, alpha, psi_max)
    log.info("drift: %d tests on %d exams against %d, %d drifted", len(corrected), len(night),
             len(reference), sum(t.counts_as_drift for t in corrected))
    return corrected


def night_status(study_date: str, tests: Sequence[DriftTest], exams: int, min_exams: int) -> NightStatus:
    """The night's verdict per family, as the sustained-drift rule reads it.

    Args:
        study_date: YYYY-MM-DD.
        tests: the night's corrected tests (from assess).
        exams: the night's exams.
        min_exams: nights with fewer exams are not judged.

    Returns:
        The families (in FAMILIES order) with a drifted test that has a p-value: PSI
        never decides.
    """
    drifted = {t.family for t in tests if t.counts_as_drift}
    return NightStatus(study_date, tuple(f for f in FAMILIES if f in drifted), judged=exams >= min_exams)


def _categorical(
    family: str, columns: Iterable[str], reference: pd.DataFrame, night: pd.DataFrame
) -> list[DriftTest]:
    tests = []
    for column in _usable(columns, reference, night):
        ref = reference[column].astype(object).where(reference[column].notna(), "(missing)")
        cur = night[column].astype(object).where(night[column].notna(), "(missing)")
        test = stats.categorical(family, column, [str(v) for v in ref], [str(v) for v in cur])
        tests += [test] if test is not None else []
    return tests


def _numeric(
    family: str, columns: Iterable[str], reference: pd.DataFrame, night: pd.DataFrame
) -> list[DriftTest]:
    tests = []
    for column in _usable(columns, reference, night):
        test = stats.numeric(family, column, _values(reference, column), _values(night, column))
        tests += [test] if test is not None else []
    return tests


def _usable(columns: Iterable[str], reference: pd.DataFrame, night: pd.DataFrame) -> list[str]:
    """Columns present in both frames and with a value on at least one side."""
    return [c for c in columns if c in reference.columns and c in night.columns
            and (reference[c].notna().any() or night[c].notna().any())]


def _values(frame: pd.DataFrame, column: str) -> np.ndarray:
    import pandas as pd

    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)


def _shared_embedding(reference: pd.DataFrame, night: pd.DataFrame) -> list[str]:
    in_night = set(embedding_columns(night))
    return [c for c in embedding_columns(reference) if c in in_night]


def _prediction(
    reference: pd.DataFrame, night: pd.DataFrame, operating_point: float, expected_flag_rate: float
) -> list[DriftTest]:
    if "score" not in reference.columns or "score" not in night.columns:
        return []
    ref, cur = _values(reference, "score"), _values(night, "score")
    scored = cur[~np.isnan(cur)]
    flag_rate = stats.rate("prediction", "flag_rate", expected_flag_rate,
                           int((scored >= operating_point).sum()), len(scored))
    if flag_rate is not None:
        flag_rate = dataclasses.replace(flag_rate, reference_n=int((~np.isnan(ref)).sum()))
    tests = [stats.numeric("prediction", "score", ref, cur), stats.psi("prediction", "score", ref, cur),
             flag_rate]
    return [t for t in tests if t is not None]


def _qc(qc_night: pd.DataFrame, qc_baseline: pd.DataFrame) -> list[DriftTest]:
    """Each (device, code) of the night against that device's history for the code.

    A pair without history (a new device, or a code the device never had) is compared with
    every device's history for the code.
    """
    for name, frame in (("qc_night", qc_night), ("qc_baseline", qc_baseline)):
        missing = [c for c in QC_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"{name} lacks columns {missing}: got {list(frame.columns)}")
    tonight = qc_night.groupby(["device", "code"])[["views", "flagged"]].sum()
    own = qc_baseline.groupby(["device", "code"])[["views", "flagged"]].sum()
    pooled = qc_baseline.groupby("code")[["views", "flagged"]].sum()
    tests = []
    for (device, code), row in tonight.iterrows():
        if (device, code) in own.index and own.loc[(device, code), "views"] > 0:
            base, source = own.loc[(device, code)], "own history"
        elif code in pooled.index:
            base, source = pooled.loc[code], "no history for this device: all devices' baseline"
        else:
            continue
        test = stats.rate_increase("qc", f"{device}|{code}", int(base["flagged"]), int(base["views"]),
                                   int(row["flagged"]), int(row["views"]))
        if test is not None:
            tests.append(dataclasses.replace(test, detail=f"{test.detail} ({source})"))
    return tests
