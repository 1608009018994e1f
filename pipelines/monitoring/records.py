"""What monitoring produces, passed between its modules and stored as time series.

Every record is PHI-free: features are named by column ("kvp", "emb_12"), devices by
manufacturer and model name, models by registered name and version.
"""

from __future__ import annotations

import dataclasses

FAMILIES = ("metadata", "image", "embedding", "prediction", "qc")


@dataclasses.dataclass(frozen=True)
class DriftTest:
    """One statistical comparison of a night against its reference.

    Attributes:
        family: one of FAMILIES.
        feature: what was compared: a column ("kvp", "img_mean", "emb_12", "score"),
            "flag_rate", or "<device>|<qc code>" for artifact rates.
        test: "chi2", "ks", "psi", "binomial" or "fisher".
        statistic: the test statistic (chi-square, KS D, PSI, observed rate).
        p_value: None for PSI, which has no sampling distribution here: it is reported
            against its threshold but does not decide drift on its own.
        q_value: Benjamini-Hochberg adjusted p-value over all of the night's tests.
        threshold: alpha (q-value limit) for tests with a p-value, psi_max for PSI.
        drifted: q_value < alpha (PSI: statistic > psi_max, informational; see
            counts_as_drift).
        reference_n: exams (views for QC) in the reference.
        current_n: exams (views for QC) in the night.
        detail: a short, PHI-free explanation ("new value 'SIEMENS'", "0.31 vs 0.20").
    """

    family: str
    feature: str
    test: str
    statistic: float
    p_value: float | None
    threshold: float
    reference_n: int
    current_n: int
    q_value: float | None = None
    drifted: bool = False
    detail: str = ""

    @property
    def counts_as_drift(self) -> bool:
        """q-value below alpha: what a night's drift verdict counts. A PSI above its limit
        is `drifted` too, for information, but never counts."""
        return self.drifted and self.p_value is not None


@dataclasses.dataclass(frozen=True)
class NightStatus:
    """A night's drift verdict per family, as the sustained-drift rule reads it.

    Attributes:
        study_date: YYYY-MM-DD.
        drifted_families: families with at least one drifted test (PSI excluded).
        judged: False when the night had too few exams to be judged (it then neither
            counts as drifted nor breaks a run of drifted nights).
    """

    study_date: str
    drifted_families: tuple[str, ...]
    judged: bool = True


@dataclasses.dataclass(frozen=True)
class Alert:
    """The sustained-drift decision of one night.

    Attributes:
        raised: True only on the night the sustained condition starts (or restarts after
            the cooldown), so a persisting drift retrains once, not every night.
        sustained_families: families drifted on at least min_nights of the last window.
        reason: a one-line explanation for the notification and the report.
    """

    raised: bool
    sustained_families: tuple[str, ...]
    reason: str


@dataclasses.dataclass(frozen=True)
class IntegrityRow:
    """One model (version) found in Triton's repository or index.

    Attributes:
        triton_model: the model's folder / name in Triton.
        version: the version folder ("" for models without versioned files checked).
        status: "ok", "mismatch" (hash differs from the registered one), "missing"
            (served but no file), "unregistered" (no MLflow version to check against),
            "unapproved" (served as champion, or holding alias champion, without an
            audited promotion or rollback), or "unknown" (a model radflow did not deploy).
        served: loaded (READY) in Triton at the time of the check.
        expected_sha256: the registered SHA-256 ("" when there is none).
        actual_sha256: the file's SHA-256 ("" when there is no file).
        registered: "<registered model name>/<version>" the file should be, or "".
        detail: a human-readable explanation.
    """

    triton_model: str
    version: str
    status: str
    served: bool
    expected_sha256: str = ""
    actual_sha256: str = ""
    registered: str = ""
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"
