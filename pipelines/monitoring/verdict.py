"""What counts as drift on the night's report: the tests with q < alpha on a judged night;
PSI above its limit is information.

`judge` decides it once, as drift.night_status does; the banner (`verdict`), the
drifted-tests table, the index and summary.json all read that one `Judgement`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from pipelines.monitoring.records import FAMILIES, DriftTest

if TYPE_CHECKING:
    from pipelines.monitoring.report import ReportInputs


@dataclasses.dataclass(frozen=True)
class Judgement:
    """The night's drift as the report states it: the banner, the drifted-tests table, the
    index and summary.json all read this one object, so they cannot disagree.

    Attributes:
        judged: False when tonight's status says too few exams (no status: judged).
        drifted: the tests that count as drift tonight (q below alpha, PSI never), smallest
            q first; empty on a night not judged.
        families: the families of `drifted`, in FAMILIES order.
        not_counted: tests with q below alpha on a night not judged (information only).
        psi_above: PSI above its limit (information only, never drift).
    """

    judged: bool
    drifted: tuple[DriftTest, ...]
    families: tuple[str, ...]
    not_counted: tuple[DriftTest, ...]
    psi_above: tuple[DriftTest, ...]


def judge(inputs: ReportInputs) -> Judgement:
    """Which of the night's tests count as drift, as drift.night_status decides it."""
    tonight = [s for s in inputs.statuses if s.study_date == inputs.study_date]
    judged = not tonight or tonight[-1].judged
    below = tuple(sorted((t for t in inputs.tests if t.counts_as_drift),
                         key=lambda t: (t.q_value is None, t.q_value or 0.0, t.family, t.feature)))
    order = {f: i for i, f in enumerate(FAMILIES)}
    families = tuple(sorted({t.family for t in below}, key=lambda f: (order.get(f, len(order)), f)))
    psi = tuple(t for t in inputs.tests if t.drifted and not t.counts_as_drift)
    return (Judgement(True, below, families, (), psi) if judged
            else Judgement(False, (), (), below, psi))


def verdict(inputs: ReportInputs) -> tuple[str, str]:
    """(kind, sentence): kind is "alert", "sustained", "drifted", "not-judged" or "stable";
    the sentence says whether the night was judged, which families drifted tonight (those
    of the drifted-tests table), whether drift is sustained and whether an alert was raised."""
    j, alert, exams = judge(inputs), inputs.alert, len(inputs.night)
    reason = f": {alert.reason}" if alert.reason else ""
    if j.judged:
        tonight = f"judged on {exams} exams, " + (f"drifted in {', '.join(j.families)}" if j.families
                                                  else "no test drifted")
    else:
        tonight = f"not judged (too few exams, {exams}), no test counts as drift"
    if alert.raised:
        return "alert", (f"Alert raised, drift sustained in {', '.join(alert.sustained_families)}{reason}. "
                         f"Tonight: {tonight}.")
    if alert.sustained_families:
        return "sustained", (f"Drift sustained in {', '.join(alert.sustained_families)}, no new alert"
                             f"{reason}. Tonight: {tonight}.")
    if not j.judged:
        return "not-judged", (f"Not judged: too few exams tonight ({exams}), so no test counts as drift; "
                              "not sustained, no alert.")
    if j.families:
        return "drifted", (f"Drifted tonight in {', '.join(j.families)}: judged on {exams} exams; "
                           "not sustained, no alert.")
    return "stable", f"Stable: judged on {exams} exams, no test drifted tonight; not sustained, no alert."
