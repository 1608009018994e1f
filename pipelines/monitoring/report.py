"""The daily monitoring report: one self-contained HTML page per task and night, and an
index of the task's nights.

Layout under the reports folder (`RadflowSettings.reports_dir`):

    <task>/index.html       every night of the task, newest first, with its verdict
    <task>/<date>           symlink to the published version, `.<date>.<token>/`:
        index.html          the report; its plots are inline PNG data URIs
        summary.json        what the index lists (verdict, families, counts, model)

A night is written to a fresh hidden folder and published by replacing the symlink in one
rename, as the worklist is: a reader sees the previous report or the new one, never a mix,
and a rerun replaces the night. The report shows no exam ids: only counts, shares, medians
and test results. Every value from the inputs is escaped; a missing column or an all-NaN
one reads "not recorded".

What counts as drift is decided once, by `verdict.judge`, as drift.night_status decides it
(q below alpha on a judged night); the banner, the drifted-tests table, the index and
summary.json all read that. PSI above its limit is listed apart, for information: it is
never drift.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.errors import PermanentError
from pipelines.monitoring import plots
from pipelines.monitoring.plots import NOT_RECORDED
from pipelines.monitoring.realised import RealisedSection, section
from pipelines.monitoring.records import Alert, DriftTest, IntegrityRow, NightStatus
from pipelines.monitoring.verdict import Judgement, judge, verdict
from pipelines.publish import publish_linked_dir, write_text

log = logging.getLogger(__name__)

SHARE_COLUMNS = ("manufacturer", "model_name", "software_version")
NUMERIC_COLUMNS = ("kvp", "exposure_mas", "body_part_thickness_mm", "compression_force_n", "pixel_spacing_mm",
                   "img_mean", "img_std", "img_p05", "img_p50", "img_p95", "img_breast_share", "img_noise",
                   "img_gradient")
ARTIFACTS = "Artifact rates by device"
SHA_CHARS = 12
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TASK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


@dataclasses.dataclass(frozen=True)
class ReportInputs:
    """Everything one night's report shows (PHI-free; frames have one row per exam, with
    any of the columns in the module's tuples, "score" and "emb_*" possibly missing)."""

    task: str
    study_date: str
    model_name: str
    model_version: str
    reference: pd.DataFrame
    night: pd.DataFrame
    tests: list[DriftTest]
    history: pd.DataFrame  # study_date, family, feature, test, statistic, p_value, q_value, drifted
    statuses: list[NightStatus]
    alert: Alert
    qc_rates: pd.DataFrame  # study_date, device, code, views, flagged, rate
    integrity: list[IntegrityRow]
    operating_point: float
    realised: RealisedSection | None = None  # outcomes joined with results (None: not computed)


class _Html(str):
    """Markup this module built itself from escaped parts: a table writes it as is."""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(value: object, fmt: str = ".3g") -> str:
    """A number as the report prints it; None and NaN are "not recorded"."""
    if value is None or (isinstance(value, float | np.floating) and math.isnan(value)):
        return NOT_RECORDED
    return format(value, fmt) if isinstance(value, int | float | np.number) else str(value)


def _table(table_id: str, headers: Sequence[str], rows: Sequence[Sequence[object]],
           classes: Sequence[str] | None = None) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(f'<tr class="{_e(c)}">' + "".join(
        f"<td>{v if isinstance(v, _Html) else _e(v)}</td>" for v in row) + "</tr>"
                   for row, c in zip(rows, classes or [""] * len(rows), strict=True))
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _column(frame: pd.DataFrame, column: str, numeric: bool = False) -> pd.Series:
    """The column, or an empty one when the frame has none (a missing column is not recorded)."""
    series = frame[column] if column in frame.columns else pd.Series([], dtype=object)
    return pd.to_numeric(series, errors="coerce").dropna() if numeric else series


def _header(inputs: ReportInputs) -> str:
    kind, sentence = verdict(inputs)
    return (f'<section id="header"><h1>Monitoring report: {_e(inputs.task)}, study date '
            f'{_e(inputs.study_date)}</h1><p>Model {_e(inputs.model_name)} version {_e(inputs.model_version)}'
            f'; <span id="night-exams">{len(inputs.night)}</span> exams tonight, <span id="reference-exams">'
            f'{len(inputs.reference)}</span> in the reference (the champion\'s validation exams).</p>'
            f'<p id="verdict" class="verdict {kind}" data-verdict="{kind}">{_e(sentence)}</p></section>')


def _drifted(test: DriftTest, judged: bool) -> str:
    """The "drifted" cell: yes only for a test that counts as drift on a judged night."""
    if test.counts_as_drift:
        return "yes" if judged else "not counted (night not judged)"
    return "no (PSI above its limit: information only)" if test.drifted else "no"


def _row_class(test: DriftTest, judged: bool) -> str:
    return "drifted" if judged and test.counts_as_drift else "informational" if test.drifted else ""


def _test_rows(tests: Sequence[DriftTest], judged: bool) -> list[list[object]]:
    return [[t.family, t.feature, t.test, _num(t.statistic), _num(t.p_value), _num(t.q_value),
             _num(t.threshold), _drifted(t, judged), t.detail or ""] for t in tests]


TEST_HEADERS = ["family", "feature", "test", "statistic", "p", "q", "threshold", "drifted", "detail"]


def _scores(inputs: ReportInputs) -> str:
    reference, night = _column(inputs.reference, "score", True), _column(inputs.night, "score", True)
    if reference.empty and night.empty:
        plot = f'<p class="missing">Scores: {NOT_RECORDED}.</p>'
    else:
        plot = _img(plots.score_plot(reference.to_numpy(float), night.to_numpy(float),
                                     inputs.operating_point), "exam scores, night against reference")
    rates = [f"{name} {(s >= inputs.operating_point).mean():.1%}" if len(s) else f"{name} {NOT_RECORDED}"
             for name, s in (("night", night), ("reference", reference))]
    tests, judged = [t for t in inputs.tests if t.family == "prediction"], judge(inputs).judged
    classes = [_row_class(t, judged) for t in tests]
    table = (_table("prediction-tests", TEST_HEADERS, _test_rows(tests, judged), classes) if tests
             else '<p class="missing">No prediction tests tonight.</p>')
    return (f'<section id="scores"><h2>Score distribution</h2><div class="side">{plot}<div>'
            f"<p>Flag rate at the operating point {inputs.operating_point:.3f}: {_e(', '.join(rates))}.</p>"
            f"{table}</div></div></section>")


def _metadata(inputs: ReportInputs) -> str:
    png = plots.shares_plot(inputs.reference, inputs.night, SHARE_COLUMNS)
    plot = (_img(png, "metadata shares, night against reference") if png
            else f'<p class="missing">Manufacturer, model and software version: {NOT_RECORDED}.</p>')
    rows = []
    for column in NUMERIC_COLUMNS:
        ref, now = _column(inputs.reference, column, True), _column(inputs.night, column, True)
        rows.append([column, _num(ref.median() if len(ref) else None),
                     _num(now.median() if len(now) else None), f"{len(now)} of {len(inputs.night)}"])
    return (f'<section id="metadata"><h2>Metadata shares</h2>{plot}<h3>Medians</h3>'
            + _table("medians", ["feature", "reference median", "night median", "night exams recorded"], rows)
            + "</section>")


def _limit(tests: Sequence[DriftTest], psi: bool) -> float:
    """The limit the night's tests used, psi_max for PSI (no p-value) or alpha for q-values,
    else the setting."""
    from pipelines.config import get_settings

    used = [t.threshold for t in tests if (t.p_value is None) == psi]
    if used:
        return used[0]
    return get_settings().drift_psi_max if psi else get_settings().drift_alpha


def _nights(inputs: ReportInputs) -> plots.Nights | None:
    """First and last night the report shows: the time-series plots span these."""
    return plots.nights_of([inputs.study_date], [s.study_date for s in inputs.statuses],
                           *(frame["study_date"] for frame in (inputs.history, inputs.qc_rates)
                             if "study_date" in frame.columns))


def _drift(inputs: ReportInputs) -> str:
    j = judge(inputs)
    png = plots.drift_plot(inputs.history, _limit(inputs.tests, psi=False), _nights(inputs))
    plot = (_img(png, "smallest q-value per family and night") if png
            else f'<p class="missing">Drift history: {NOT_RECORDED}.</p>')
    if j.drifted:
        table = _table("drifted-tests", TEST_HEADERS, _test_rows(j.drifted, j.judged))
    elif j.judged:
        table = '<p id="drifted-tests" class="none">No test drifted tonight.</p>'
    else:
        table = '<p id="drifted-tests" class="none">Not judged (too few exams): no test counts as drift.</p>'
    nights = sorted(inputs.statuses, key=lambda s: s.study_date, reverse=True)
    statuses = _table("nights", ["study date", "judged", "drifted families"], [
        [s.study_date, "yes" if s.judged else "no (too few exams)",
         (", ".join(j.families if s.study_date == inputs.study_date else s.drifted_families) or "none")
         if s.judged else "not counted"] for s in nights])
    return (f'<section id="drift"><h2>Drift over time</h2>{plot}<h3>Drifted tests tonight</h3>{table}'
            f"{_information(inputs, j)}<h3>Nights</h3>{statuses}</section>")


def _information(inputs: ReportInputs, j: Judgement) -> str:
    """PSI above its limit, and q below alpha on a night not judged: shown, never drift."""
    psi_max = _limit(inputs.tests, psi=True)
    heading = f"PSI above {psi_max:g}, shown for information, not drift"
    rows = [[t.family, t.feature, _num(t.statistic), _num(t.threshold), t.detail] for t in j.psi_above]
    psi = (_table("psi-above", ["family", "feature", "PSI", "threshold", "detail"], rows,
                  ["informational"] * len(rows)) if rows
           else f'<p id="psi-above" class="none">No PSI above {psi_max:g} tonight.</p>')
    text = f'<h3 id="psi-heading">{_e(heading)}</h3>{psi}'
    if j.not_counted:
        text += (f"<h3>q below {_limit(inputs.tests, psi=False):g} on a night not judged (too few exams), "
                 "shown for information, not drift</h3>"
                 + _table("not-counted", TEST_HEADERS, _test_rows(j.not_counted, j.judged),
                          ["informational"] * len(j.not_counted)))
    return text


def _artifacts(inputs: ReportInputs) -> str:
    rates, png = inputs.qc_rates, plots.qc_plot(inputs.qc_rates, _nights(inputs))
    if png is None:
        return f'<section id="artifacts"><h2>{ARTIFACTS}</h2><p class="missing">{NOT_RECORDED}.</p></section>'
    plot = _img(png, "artifact rates by device and QC code")
    qc = {t.feature: t for t in inputs.tests if t.family == "qc"}
    rows, classes, judged = [], [], judge(inputs).judged
    dates = pd.to_datetime(rates["study_date"]).dt.strftime("%Y-%m-%d")
    for r in rates[dates == inputs.study_date].sort_values(["device", "code"]).itertuples():
        test = qc.get(f"{r.device}|{r.code}")
        rows.append([r.device, r.code, _num(getattr(r, "views", None), ".0f"),
                     _num(getattr(r, "flagged", None), ".0f"),
                     _num(float(r.rate), ".1%"), "not tested" if test is None else
                     f"{_drifted(test, judged)} (q {_num(test.q_value)})"])
        classes.append("" if test is None else _row_class(test, judged))
    headers = ["device", "QC code", "views", "flagged", "rate", "drifted"]
    table = (_table("artifacts-tonight", headers, rows, classes) if rows
             else '<p class="missing">No artifact rates tonight.</p>')
    return f'<section id="artifacts"><h2>{ARTIFACTS}</h2>{plot}<h3>Tonight</h3>{table}</section>'


def _integrity(inputs: ReportInputs) -> str:
    rows = [[r.triton_model, r.version or "-", r.status, "yes" if r.served else "no", r.registered or "-",
             r.expected_sha256[:SHA_CHARS] or "-", r.actual_sha256[:SHA_CHARS] or "-", r.detail]
            for r in inputs.integrity]
    table = (_table("integrity-rows", ["Triton model", "version", "status", "served", "registered",
                                       "expected SHA-256", "actual SHA-256", "detail"], rows,
                    [f"status-{r.status}" for r in inputs.integrity])
             if rows else '<p class="missing">No model files were checked.</p>')
    return f'<section id="integrity"><h2>Integrity of served models</h2>{table}</section>'


_STYLE = """body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#111;background:#fff}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:3px 6px}th{background:#eee}
td:first-child{white-space:nowrap}img{max-width:100%;border:1px solid #ddd}
.side{display:flex;gap:1em;flex-wrap:wrap;align-items:flex-start}.missing,.none{color:#555;font-style:italic}
.verdict{padding:.6em 1em;font-size:1.2em;font-weight:bold;border-radius:4px}
.verdict.alert{background:#c62828;color:#fff}.verdict.sustained{background:#ef6c00;color:#fff}
.verdict.drifted,tr.drifted,tr.verdict-drifted{background:#fff3c4}.verdict.not-judged{background:#e0e0e0}
.verdict.stable,.status-ok,tr.verdict-stable{background:#c8e6c9}tr.verdict-alert{background:#ffcdd2}
.status-mismatch,.status-missing{background:#ffcdd2;font-weight:bold}
.status-unregistered,.status-unknown,tr.verdict-sustained{background:#ffe0b2}tr.informational{background:#e3f2fd}"""


def _doc(title: str, body: str) -> str:
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">\n<title>{_e(title)}</title>'
            f"\n<style>{_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")


def page(inputs: ReportInputs) -> str:
    """The night's report as one HTML document."""
    return _doc(f"radflow monitoring {inputs.task} {inputs.study_date}",
                '<p><a href="../index.html">all nights</a></p>\n' + "\n".join(
                    part(inputs) for part in (_header, _scores, _metadata, _drift, _artifacts, _integrity,
                                              section)))


def summary(inputs: ReportInputs) -> dict[str, Any]:
    """What the index lists about the night (summary.json)."""
    kind, sentence = verdict(inputs)
    return {"task": inputs.task, "study_date": inputs.study_date, "model_name": inputs.model_name,
            "model_version": inputs.model_version, "verdict": kind, "verdict_text": sentence,
            "drifted_families": list(judge(inputs).families),
            "night_exams": len(inputs.night), "reference_exams": len(inputs.reference)}


def publish_index(task_dir: Path) -> Path:
    """(Re)write `<task_dir>/index.html` listing every published night, newest first."""
    found = []
    for path in task_dir.glob("*/summary.json"):
        if _DATE.match(path.parent.name):
            try:
                found.append(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError) as exc:
                log.warning("monitoring index: skipping %s: %s", path, exc)
    found.sort(key=lambda n: str(n.get("study_date", "")), reverse=True)
    rows = []
    for n in found:
        date = _e(n.get("study_date", ""))
        rows.append([_Html(f'<a href="{date}/index.html">{date}</a>'), n.get("verdict_text", ""),
                     ", ".join(n.get("drifted_families", [])) or "none", n.get("night_exams", ""),
                     f"{n.get('model_name', '')} {n.get('model_version', '')}"])
    table = _table("reports", ["study date", "verdict", "drifted families", "exams", "model"], rows,
                   [f"verdict-{n.get('verdict', '')}" for n in found])
    nights = "1 night" if len(found) == 1 else f"{len(found)} nights"
    body = f"<h1>Monitoring reports: {_e(task_dir.name)}</h1><p>{nights}, newest first.</p>{table}"
    # 0644: the index is served read-only
    return write_text(task_dir / "index.html", _doc(f"radflow monitoring {task_dir.name}", body), mode=0o644)


def write(inputs: ReportInputs, out_dir: Path) -> Path:
    """Publish the night's report at `<out_dir>/<task>/<study_date>/index.html` and rewrite
    the task's index; a rerun replaces the night's report in one rename.

    Args:
        inputs: the night's data, tests, history, alert, artifact rates and integrity rows.
        out_dir: the reports folder (`RadflowSettings.reports_dir`).

    Returns:
        The night's index.html, through the stable `<task>/<date>` path.

    Raises:
        PermanentError: the task or date cannot name a folder, or the operating point is
            outside [0, 1]; nothing is published then and the previous report stays.
    """
    if not _DATE.match(inputs.study_date):
        raise PermanentError(f"study date {inputs.study_date!r} is not YYYY-MM-DD")
    if not _TASK.match(inputs.task):
        raise PermanentError(f"task name {inputs.task!r} cannot name a folder (letters, digits, _ -)")
    if not 0.0 <= inputs.operating_point <= 1.0:
        raise PermanentError(f"operating point must be in [0, 1], got {inputs.operating_point!r}")
    task_dir = out_dir / inputs.task
    task_dir.mkdir(parents=True, exist_ok=True)
    with publish_linked_dir(task_dir / inputs.study_date) as staged:
        (staged / "index.html").write_text(page(inputs), encoding="utf-8")
        (staged / "summary.json").write_text(json.dumps(summary(inputs), indent=1, sort_keys=True) + "\n",
                                             encoding="utf-8")
    publish_index(task_dir)
    log.info("monitoring report: %s %s published, verdict %s", inputs.task, inputs.study_date,
             verdict(inputs)[0])
    return task_dir / inputs.study_date / "index.html"
