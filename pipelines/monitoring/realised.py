"""The monitoring report's "Realised performance" section and its alert.

Each night the realised performance of the task (pipelines/outcomes: outcomes joined with
the stored results, per model version and month) is computed with the night, and the
champion that screened it is checked against the policy's `outcomes` minimum: the lower
bound of its realised sensitivity CI below `min_sensitivity` is an alert, notified like a
drift alert (pipelines/monitoring/notices.py). Its notice id names the evidence (version,
exams with an outcome, cancers, cancers flagged), so the nights that repeat the same
evidence send the same id, which receivers drop; new outcomes that keep it below send anew.
Without outcomes the section says so and nothing is checked; a policy it cannot read is
shown as the section's problem and never stops the drift monitoring.
"""

from __future__ import annotations

import dataclasses
import html
import logging
from typing import TYPE_CHECKING

from pipelines.errors import PermanentError
from pipelines.monitoring.notices import MonitoringNotice
from pipelines.outcomes.bootstrap import Estimate
from pipelines.outcomes.summary import OutcomesSummary, summarise

if TYPE_CHECKING:
    from pipelines.monitoring.report import ReportInputs

log = logging.getLogger(__name__)

HEADERS = ("model version", "month", "exams screened", "with an outcome", "without an outcome",
           "cancers", "negatives", "pending", "sensitivity (CI)", "specificity (CI)", "AUC (CI)")


@dataclasses.dataclass(frozen=True)
class RealisedSection:
    """What the section shows: the summary, or why it could not be computed."""

    summary: OutcomesSummary | None
    problem: str = ""

    @property
    def alert(self) -> bool:
        return self.summary is not None and self.summary.alert

    @property
    def reason(self) -> str:
        check = self.summary.check if self.summary else None
        return check.reason if check else (self.problem or (self.summary.note if self.summary else ""))


def assess(task: str, model_version: str) -> RealisedSection:
    """The night's section: realised performance of `task`, `model_version` checked."""
    try:
        summary = summarise(task, model_version)
    except PermanentError as exc:  # e.g. a malformed `outcomes` block: shown, drift goes on
        log.warning("realised performance of %s not computed: %s", task, exc)
        return RealisedSection(None, f"not computed: {exc}")
    log.info("realised performance of %s: %d breast outcomes, alert %s", task,
             summary.performance.outcomes, summary.alert)
    return RealisedSection(summary)


def notice(task: str, date: str, summary: OutcomesSummary, report: str) -> MonitoringNotice:
    """The alert's notice; its id changes only when the evidence does.

    Raises:
        ValueError: the summary checked no version.
    """
    check = summary.check
    if check is None:
        raise ValueError(f"realised performance of {task} checked no version: nothing to notify")
    row = summary.performance.total(check.model_version)
    cancers = row.positives if row else 0
    found = round((check.sensitivity.value or 0.0) * cancers)
    return MonitoringNotice(
        id=f"outcomes/{task}/{check.model_version}/{check.exams_with_outcome}-{cancers}-{found}",
        kind="outcomes", task=task, date=date, model_version=check.model_version,
        summary=f"realised sensitivity below the policy's minimum {check.min_sensitivity:.2f}",
        details=(check.reason,), report=report)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _estimate(e: Estimate) -> str:
    if e.value is None or e.ci_low is None or e.ci_high is None:
        return f"not estimated: {e.reason}"
    return f"{e.value:.3f} ({e.ci_low:.3f}-{e.ci_high:.3f})"


def _check(section: RealisedSection) -> str:
    kind = "alert" if section.alert else "problem" if section.problem else "stable"
    check = section.summary.check if section.summary else None
    who = f"Model version {_e(check.model_version)}: " if check else ""
    return (f'<p id="realised-check" class="verdict {kind}" data-alert="{str(section.alert).lower()}">'
            f"{who}{_e(section.reason or 'nothing to check')}</p>")


def section(inputs: ReportInputs) -> str:
    """The report's "Realised performance" section ("" when the night did not compute it)."""
    found = inputs.realised
    if found is None:
        return ""
    head = '<section id="realised"><h2>Realised performance</h2>'
    summary = found.summary
    if summary is None or summary.performance.outcomes == 0:
        return f'{head}{_check(found)}<p class="missing">{_e(summary.note if summary else "")}</p></section>'
    perf = summary.performance
    rows = "".join(
        f'<tr class="{"total" if r.month == "all" else ""}">' + "".join(f"<td>{_e(v)}</td>" for v in (
            r.model_version, "all months" if r.month == "all" else r.month, r.exams_screened,
            r.exams_with_outcome, f"{r.without_outcome_share:.1%}", r.positives, r.negatives, r.pending,
            _estimate(r.sensitivity), _estimate(r.specificity), _estimate(r.auc))) + "</tr>"
        for r in perf.rows)
    table = (f'<table id="realised-performance"><thead><tr>{"".join(f"<th>{_e(h)}</th>" for h in HEADERS)}'
             f"</tr></thead><tbody>{rows}</tbody></table>")
    how = (f"Ground truth: malignant pathology or a follow-up BI-RADS 6 is a cancer; benign pathology or "
           f"a follow-up BI-RADS 1-2 is negative; BI-RADS 0, 3, 4 or 5 without pathology is pending. "
           f"Sensitivity and specificity at each night's stored flags; {perf.confidence:.0%} CIs by a "
           f"stratified percentile bootstrap ({perf.resamples} resamples, seed {perf.seed}). "
           f"{perf.outcomes} breast outcomes stored.")
    note = f'<p class="missing">{_e(summary.note)}</p>' if summary.note else ""
    return f"{head}{_check(found)}<p>{_e(how)}</p>{table}{note}</section>"
