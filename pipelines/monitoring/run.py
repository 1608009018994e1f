"""`radflow monitor --date D`: one screened night against the champion's validation data.

Steps: the night's screening run names the model version that scored it -> its reference
(logged with the version at training) and the night's features (written by screening) ->
every drift test (metadata, image statistics, embeddings, predictions, artifact rates per
device; Benjamini-Hochberg over all of them) -> the night's verdict and the sustained-drift
rule over the previous nights -> the realised performance once outcomes arrived, its
champion checked against the policy's minimum (monitoring/realised.py) -> one transaction
of time series -> the daily report -> on an alert, the notification. The DAG turns a drift
alert into the `mammo_data_drift` asset, which starts `retrain_mammo_model` (a realised
performance alert is notified only: it needs people, not a retraining). A rerun of a night
replaces its rows and its report.

`radflow check-integrity`: every model file Triton serves against its registered SHA-256,
unknown models reported; stored per day and notified when something is wrong.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import TYPE_CHECKING

from pipelines import features
from pipelines.config import get_settings
from pipelines.domain import IntegrityResult, MonitorResult
from pipelines.errors import PermanentError
from pipelines.monitoring import alerts, drift, realised, reference, store
from pipelines.monitoring.notices import MonitoringNotice, drift_notice
from pipelines.monitoring.records import Alert, DriftTest
from pipelines.notify import send

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


def _operating_point(task: str, model_name: str, version: str) -> float:
    from pipelines.deployments import find
    from pipelines.tasks import get_task

    deployed = find("champion", get_task(task).triton_model)
    if deployed is not None and deployed.model_name == model_name and deployed.model_version == version:
        return deployed.operating_point
    from pipelines.tracking import mlflow_client

    tags = mlflow_client().get_model_version(model_name, version).tags or {}
    if "operating_point" not in tags:
        raise PermanentError(f"{model_name} version {version} has no operating_point tag")
    return float(tags["operating_point"])


def _alert_notice(task: str, date: str, version: str, alert: Alert, tests: list[DriftTest],
                  report_path: str) -> MonitoringNotice:
    drifted = sorted((t for t in tests if t.counts_as_drift and t.family in alert.sustained_families),
                     key=lambda t: t.q_value or 0.0)[:10]
    details = tuple(f"{t.family} {t.feature} ({t.test}): q={t.q_value:.2g} {t.detail}".strip()
                    for t in drifted)
    return drift_notice(task, date, version, alert.reason, report_path, details)


def run(study_date: str, task: str = "mammo", notify: bool = True) -> MonitorResult:
    """Monitor one screened night (YYYY-MM-DD) of `task`.

    Raises:
        TransientError: the night has not been screened yet (retry later).
        PermanentError: the version has no reference, or the night no features.
    """
    from pipelines.monitoring import report

    s = get_settings()
    date = dt.date.fromisoformat(study_date).isoformat()
    model_name, version, _ = store.screened_by(task, date)
    ref = reference.load(model_name, version)
    night = features.read_night(task, date, version)
    op = _operating_point(task, model_name, version)
    expected = float((ref.score >= op).mean()) if len(ref) else 0.0
    qc_night, qc_baseline = store.qc_night_and_baseline(date, s.drift_qc_history_nights)
    tests = drift.assess(ref, night, operating_point=op, expected_flag_rate=expected, qc_night=qc_night,
                         qc_baseline=qc_baseline, alpha=s.drift_alpha, psi_max=s.drift_psi_max)
    status = drift.night_status(date, tests, len(night), s.drift_min_exams)
    lookback = 2 * s.drift_window_nights + s.drift_cooldown_nights
    earlier = store.history(task, version, date, lookback)
    alert = alerts.decide([*earlier, status], s.drift_window_nights, s.drift_min_nights,
                          s.drift_cooldown_nights, store.alerts_before(task, version, date))
    integrity = store.integrity_rows(date)
    integrity_ok = all(r.ok for r in integrity) if integrity else None
    first = (dt.date.fromisoformat(date) - dt.timedelta(days=30)).isoformat()
    outcomes = realised.assess(task, version)
    inputs = report.ReportInputs(
        task=task, study_date=date, model_name=model_name, model_version=version, reference=ref,
        night=night, tests=tests, history=_with_tonight(store.drift_history(task, version, first, date),
                                                        date, tests),
        statuses=[*earlier, status], alert=alert, qc_rates=store.qc_counts(first, date),
        integrity=integrity, operating_point=op, realised=outcomes)
    page = report.write(inputs, s.reports_dir / "monitoring")
    run_row = {"run_id": f"{task}/{date}/{version}", "task": task, "study_date": date,
               "model_name": model_name, "model_version": version, "status": "complete",
               "exams": len(night), "reference_exams": len(ref), "judged": status.judged,
               "drifted_families": list(status.drifted_families),
               "sustained_families": list(alert.sustained_families), "alert": alert.raised,
               "alert_reason": alert.reason, "integrity_ok": integrity_ok,
               "report": str(page), "finished_at": dt.datetime.now(dt.UTC), "error": None}
    store.save(run_row, tests)
    notified = notify and alert.raised and send(_alert_notice(task, date, version, alert, tests, str(page)))
    if notify and outcomes.alert and outcomes.summary is not None:
        notified = send(realised.notice(task, date, outcomes.summary, str(page))) or notified
    log.info("monitor %s %s: %d exams vs %d, drifted %s, sustained %s, alert %s", task, date, len(night),
             len(ref), ",".join(status.drifted_families) or "none",
             ",".join(alert.sustained_families) or "none", alert.raised)
    return MonitorResult(
        date=date, task=task, model_name=model_name, model_version=version, exams=len(night),
        reference_exams=len(ref), judged=status.judged, tests=len(tests),
        drifted_tests=sum(t.counts_as_drift for t in tests),
        drifted_families=list(status.drifted_families), sustained_families=list(alert.sustained_families),
        alert=alert.raised, alert_reason=alert.reason, integrity_ok=integrity_ok,
        report=str(page), notified=notified, outcomes_alert=outcomes.alert, outcomes_reason=outcomes.reason)


def _with_tonight(frame: pd.DataFrame, date: str, tests: list[DriftTest]) -> pd.DataFrame:
    """The stored series with tonight's tests in place of any stored earlier run of tonight."""
    import pandas as pd

    tonight = pd.DataFrame([{"study_date": date, **dataclasses.asdict(t)} for t in tests])
    columns = ["study_date", "family", "feature", "test", "statistic", "p_value", "q_value", "drifted"]
    earlier = frame[frame.study_date != date] if len(frame) else frame
    parts = [p for p in (earlier, tonight) if len(p)]
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat([p[columns] for p in parts], ignore_index=True)


def check_integrity(check_date: str | None = None, notify: bool = True) -> IntegrityResult:
    """Check every model file in Triton's repository; store the day's rows; notify on problems.

    Raises:
        TritonUnavailable / MlflowUnavailable: the check could not run (retry).
    """
    from pipelines.monitoring import integrity

    date = check_date or dt.date.today().isoformat()
    rows = integrity.check()
    store.save_integrity(date, rows)
    problems = [r for r in rows if not r.ok]
    if problems and notify:
        send(MonitoringNotice(
            id=f"integrity/{date}", kind="integrity", task="all", date=date, model_version="",
            summary=f"{len(problems)} model file problem(s) in Triton's repository",
            details=tuple(f"{r.triton_model}/{r.version or '-'}: {r.status}: {r.detail}" for r in problems),
            report=""))
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    log.info("integrity %s: %s", date, ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return IntegrityResult(date=date, ok=not problems, counts=counts,
                           problems=[{"triton_model": r.triton_model, "version": r.version,
                                      "status": r.status, "detail": r.detail} for r in problems],
                           error=(f"{len(problems)} model integrity problem(s): " + "; ".join(
                               f"{r.triton_model}/{r.version or '-'} {r.status}" for r in problems))
                           if problems else None)


