"""The statistical tests of drift monitoring, one function per test, and their correction.

Each test compares one feature of a night with its reference and returns a DriftTest with
`q_value` None and `drifted` False; `correct` then adjusts all of the night's p-values
together (Benjamini-Hochberg) and decides. A test returns None when its samples are too
small to say anything (an empty night, a column with no values). Details name columns,
device names and numbers only, never anything about a patient.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence

import numpy as np

from pipelines.monitoring.records import DriftTest

PSI_EPSILON = 1e-4  # share given to an empty bin so that PSI stays finite


def categorical(
    family: str, feature: str, reference: Sequence[str], current: Sequence[str]
) -> DriftTest | None:
    """Chi-square test of homogeneity of a categorical column's counts.

    Every category seen in either sample is a column of the 2 x K table, so a category
    new in the night (a new manufacturer) weighs fully.

    Args:
        family: the DriftTest family.
        feature: the column compared.
        reference: the reference's values, one per exam.
        current: the night's values, one per exam.

    Returns:
        The test (statistic = chi-square; p = 1 when both samples hold one and the same
        category), or None if either sample is empty.
    """
    if len(reference) == 0 or len(current) == 0:
        return None
    ref_tally, cur_tally = Counter(reference), Counter(current)
    categories = sorted(ref_tally.keys() | cur_tally.keys())
    ref_counts = np.array([ref_tally[c] for c in categories], dtype=float)
    cur_counts = np.array([cur_tally[c] for c in categories], dtype=float)
    if len(categories) == 1:
        statistic, p_value = 0.0, 1.0
    else:
        from scipy.stats import chi2_contingency

        # Each category occurs in at least one sample, so no column of the table is all zero.
        result = chi2_contingency(np.vstack([ref_counts, cur_counts]))
        statistic, p_value = float(result.statistic), float(result.pvalue)
    detail = _share_change(categories, ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum())
    return DriftTest(family, feature, "chi2", statistic, p_value, threshold=0.0,
                     reference_n=len(reference), current_n=len(current), detail=detail)


def _share_change(categories: list[str], ref_share: np.ndarray, cur_share: np.ndarray) -> str:
    """'A' 100% -> 0%, 'B' new at 100%: the largest change of a known category, then new ones."""
    parts = []
    known = [i for i, share in enumerate(ref_share) if share > 0]
    largest = max(known, key=lambda i: abs(cur_share[i] - ref_share[i]))
    if cur_share[largest] != ref_share[largest]:
        parts.append(f"'{categories[largest]}' {ref_share[largest]:.0%} -> {cur_share[largest]:.0%}")
    new = sorted((i for i, share in enumerate(ref_share) if share == 0), key=lambda i: -cur_share[i])
    parts += [f"'{categories[i]}' new at {cur_share[i]:.0%}" for i in new[:3]]
    if len(new) > 3:
        parts.append(f"{len(new) - 3} more new")
    return ", ".join(parts) or "same shares"


def numeric(family: str, feature: str, reference: np.ndarray, current: np.ndarray) -> DriftTest | None:
    """Two-sample Kolmogorov-Smirnov test of a numeric column (NaN dropped).

    Returns:
        The test (statistic = D, detail = the medians), or None if either side has fewer
        than 2 values.
    """
    ref, cur = _finite(reference), _finite(current)
    if len(ref) < 2 or len(cur) < 2:
        return None
    from scipy.stats import ks_2samp

    result = ks_2samp(ref, cur)
    return DriftTest(family, feature, "ks", float(result.statistic), float(result.pvalue), threshold=0.0,
                     reference_n=len(ref), current_n=len(cur),
                     detail=f"median {np.median(ref):.4g} -> {np.median(cur):.4g}")


def psi(
    family: str, feature: str, reference: np.ndarray, current: np.ndarray, bins: int = 10
) -> DriftTest | None:
    """Population stability index over bins at the reference's quantiles (NaN dropped).

    The inner edges are the reference's deduplicated quantiles and the outer edges are
    -inf and +inf, so every value of either sample falls in a bin. PSI has no p-value
    here; `correct` sets its threshold.

    Returns:
        The test (statistic = PSI), or None if either side has fewer than 2 values.
    """
    ref, cur = _finite(reference), _finite(current)
    if len(ref) < 2 or len(cur) < 2:
        return None
    if bins < 2:
        raise ValueError(f"PSI needs at least 2 bins, got {bins}")
    inner = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_share = _bin_shares(ref, inner)
    cur_share = _bin_shares(cur, inner)
    value = float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))
    return DriftTest(family, feature, "psi", value, None, threshold=0.0, reference_n=len(ref),
                     current_n=len(cur), detail=f"PSI {value:.3f} over {len(inner) + 1} bins")


def _bin_shares(values: np.ndarray, inner_edges: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.searchsorted(inner_edges, values, side="right"), minlength=len(inner_edges) + 1)
    shares = counts / counts.sum()
    return np.maximum(shares, PSI_EPSILON)


def _finite(values: np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    return array[~np.isnan(array)]


def rate(family: str, feature: str, expected: float, successes: int, n: int) -> DriftTest | None:
    """Two-sided binomial test of an observed rate against an expected one.

    Args:
        expected: the rate expected from the reference (e.g. its flag rate), in [0, 1].
        successes: how many of the night's n exams had the property (e.g. were flagged).
        n: the night's exams.

    Returns:
        The test (statistic = observed rate), or None if n is 0.

    Raises:
        ValueError: expected outside [0, 1], or successes outside [0, n].
    """
    if not 0.0 <= expected <= 1.0:
        raise ValueError(f"expected rate of {feature} must be in [0, 1], got {expected}")
    if n == 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"{feature}: {successes} successes out of {n}")
    from scipy.stats import binomtest

    observed = successes / n
    p_value = float(binomtest(successes, n, expected).pvalue)
    return DriftTest(family, feature, "binomial", observed, p_value, threshold=0.0, reference_n=0,
                     current_n=n, detail=f"{observed:.3g} vs {expected:.3g} expected ({successes}/{n})")


def rate_increase(
    family: str, feature: str, baseline_flagged: int, baseline_views: int, flagged: int, views: int
) -> DriftTest | None:
    """One-sided Fisher's exact test that tonight's rate is higher than the baseline's.

    Used for a device's artifact rate of one QC code against its own history.

    Returns:
        The test (statistic = tonight's rate, counts in views), or None if either side has
        no views.

    Raises:
        ValueError: a flagged count outside [0, views].
    """
    if baseline_views <= 0 or views <= 0:
        return None
    if not (0 <= flagged <= views and 0 <= baseline_flagged <= baseline_views):
        raise ValueError(f"{feature}: flagged {flagged}/{views} views, baseline "
                         f"{baseline_flagged}/{baseline_views}")
    from scipy.stats import fisher_exact

    table = [[flagged, views - flagged], [baseline_flagged, baseline_views - baseline_flagged]]
    p_value = float(fisher_exact(table, alternative="greater").pvalue)
    tonight, before = flagged / views, baseline_flagged / baseline_views
    return DriftTest(family, feature, "fisher", tonight, p_value, threshold=0.0,
                     reference_n=baseline_views, current_n=views,
                     detail=f"{tonight:.3g} ({flagged}/{views}) vs {before:.3g} baseline")


def correct(tests: Sequence[DriftTest], alpha: float, psi_max: float) -> list[DriftTest]:
    """Benjamini-Hochberg over every test with a p-value; decide each test.

    Args:
        tests: the night's tests, in any order (the order is kept).
        alpha: a test with a p-value drifted when its q-value is below alpha.
        psi_max: a PSI test drifted (informationally) when its PSI is above psi_max.

    Returns:
        The tests with q_value, threshold and drifted set; PSI tests keep p and q None.
    """
    with_p = [i for i, t in enumerate(tests) if t.p_value is not None]
    q_values: dict[int, float] = {}
    if with_p:
        from scipy.stats import false_discovery_control

        adjusted = false_discovery_control([tests[i].p_value for i in with_p], method="bh")
        q_values = {i: float(q) for i, q in zip(with_p, adjusted, strict=True)}
    corrected = []
    for i, test in enumerate(tests):
        if i in q_values:
            q = q_values[i]
            corrected.append(dataclasses.replace(test, q_value=q, threshold=alpha, drifted=q < alpha))
        else:
            corrected.append(dataclasses.replace(test, q_value=None, threshold=psi_max,
                                                 drifted=test.statistic > psi_max))
    return corrected
