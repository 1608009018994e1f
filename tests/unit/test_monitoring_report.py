"""The daily monitoring report: its sections and plots, the verdict, integrity rows,
escaping, no exam ids, the rerun that replaces a night, the index of nights, and inputs
with columns missing. Inputs are fabricated with a seeded numpy RNG."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipelines.errors import PermanentError
from pipelines.monitoring import plots, report
from pipelines.monitoring.records import Alert, DriftTest, IntegrityRow, NightStatus
from pipelines.monitoring.report import ReportInputs
from pipelines.monitoring.verdict import verdict

DATE = "2026-03-14"
NIGHTS = [str(d.date()) for d in pd.date_range(end=DATE, periods=6)]
SECTIONS = ["header", "scores", "metadata", "drift", "artifacts", "integrity"]
BAD_SOFTWARE = "<script>alert('x')</script>"
EXPECTED_SHA, ACTUAL_SHA = "0123456789ab" + "c" * 52, "fedcba987654" + "d" * 52
REASON = "metadata and prediction drifted on 2 of the last 3 nights"
DEVICES = ("HOLOGIC Selenia", "GE Senographe")


def exams(rng: np.random.Generator, n: int, shifted: bool, first: int) -> pd.DataFrame:
    """One row per exam; the shifted night has a new vendor and higher kVp and scores."""
    vendors = ["HOLOGIC", "GE", "SIEMENS"] if shifted else ["HOLOGIC", "GE"]
    frame = pd.DataFrame({
        "exam_id": [f"PSEUDO-{first + i:05d}" for i in range(n)],
        "device": rng.choice(DEVICES, n), "manufacturer": rng.choice(vendors, n),
        "model_name": rng.choice(["Selenia Dimensions", "Senographe Pristina"], n),
        "software_version": rng.choice(["1.8", BAD_SOFTWARE] if shifted else ["1.7", "1.8"], n),
        "kvp": rng.normal(31.0 if shifted else 28.0, 1.0, n), "exposure_mas": rng.normal(100, 10, n),
        "body_part_thickness_mm": rng.normal(55, 8, n), "compression_force_n": rng.normal(110, 15, n),
        "pixel_spacing_mm": np.full(n, 0.07),
        "score": rng.beta(3.0, 3.0, n) if shifted else rng.beta(2.0, 5.0, n)})
    for name in ("img_mean", "img_std", "img_p05", "img_p50", "img_p95", "img_breast_share", "img_noise",
                 "img_gradient"):
        frame[name] = rng.random(n)
    embeddings = pd.DataFrame(rng.normal(size=(n, 64)), columns=[f"emb_{i}" for i in range(64)])
    return pd.concat([frame, embeddings], axis=1)


def history(rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for k, night in enumerate(NIGHTS):
        for family in ("metadata", "image", "embedding", "prediction", "qc"):
            drifting = family in ("metadata", "prediction") and k >= len(NIGHTS) - 2
            q = 10 ** -rng.uniform(4, 9) if drifting else rng.uniform(0.05, 1.0)
            rows.append({"study_date": night, "family": family, "feature": "x", "test": "ks",
                         "statistic": 0.1, "p_value": q / 2, "q_value": q, "drifted": q < 0.01})
    return pd.DataFrame(rows)


def qc_rates(rng: np.random.Generator) -> pd.DataFrame:
    rows = [{"study_date": night, "device": device, "code": code, "views": 200,
             "flagged": int(flagged), "rate": flagged / 200}
            for night in NIGHTS for device in DEVICES for code in ("foreign_object", "motion_blur")
            for flagged in [rng.integers(2, 12) + (30 if night == DATE and code == "foreign_object"
                                                         and device == DEVICES[0] else 0)]]
    return pd.DataFrame(rows)


TESTS = [
    DriftTest("prediction", "score", "ks", 0.41, 1e-9, 0.01, 300, 60, 4e-8, True, "median 0.49 vs 0.28"),
    DriftTest("prediction", "score", "psi", 0.62, None, 0.25, 300, 60, None, True, "0.62 > 0.25"),
    DriftTest("prediction", "flag_rate", "binomial", 0.35, 0.2, 0.01, 300, 60, 0.4, False, "0.35 vs 0.29"),
    DriftTest("metadata", "manufacturer", "chi2", 40.2, 1e-8, 0.01, 300, 60, 2e-7, True,
              "new value 'SIEMENS'"),
    DriftTest("metadata", "kvp", "ks", 0.9, 1e-12, 0.01, 300, 60, 1e-10, True, "median 31.0 vs 28.0"),
    DriftTest("metadata", "software_version", "chi2", 12.0, 1e-3, 0.01, 300, 60, 3e-3, True,
              f"new value {BAD_SOFTWARE!r}"),
    DriftTest("image", "img_mean", "ks", 0.1, 0.6, 0.01, 300, 60, 0.8, False, ""),
    DriftTest("qc", f"{DEVICES[0]}|foreign_object", "binomial", 0.2, 1e-6, 0.01, 6000, 120, 1e-5, True,
              "0.20 vs 0.04"),
]
INTEGRITY = [
    IntegrityRow("mammo_screening", "7", "ok", True, EXPECTED_SHA, EXPECTED_SHA, "mammo-screening/7", "ok"),
    IntegrityRow("mammo_screening", "6", "mismatch", False, EXPECTED_SHA, ACTUAL_SHA, "mammo-screening/6",
                 "file hash differs from the registered one"),
    IntegrityRow("other_model", "", "unknown", True, detail="not deployed by radflow"),
]


def build_inputs(study_date: str = DATE, seed: int = 0, **changes: Any) -> ReportInputs:
    """A shifted night against its reference, with an alert raised and a mismatch row."""
    rng = np.random.default_rng(seed)
    inputs = ReportInputs(
        task="mammo", study_date=study_date, model_name="mammo-screening", model_version="7",
        reference=exams(rng, 300, False, 0), night=exams(rng, 60, True, 1000), tests=TESTS,
        history=history(rng), statuses=[NightStatus(n, ("metadata", "prediction") if k >= 4 else ())
                                        for k, n in enumerate(NIGHTS)],
        alert=Alert(True, ("metadata", "prediction"), REASON), qc_rates=qc_rates(rng), integrity=INTEGRITY,
        operating_point=0.42)
    return dataclasses.replace(inputs, **changes)


class Page(HTMLParser):
    """What the tests read from a page: sections, images, table rows, ids and tags."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.images: list[dict[str, str]] = []
        self.rows: list[tuple[str, str, list[str]]] = []  # (table id, row class, cell texts)
        self.by_id: dict[str, tuple[dict[str, str], str]] = {}
        self.tags: set[str] = set()
        self._table = ""
        self._open_ids: list[list[Any]] = []  # [id, attributes, tag, text parts] of open elements
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.add(tag)
        if tag == "section":
            self.sections.append(a.get("id", ""))
        elif tag == "img":
            self.images.append(a)
        elif tag == "table":
            self._table = a.get("id", "")
        elif tag == "tr":
            self.rows.append((self._table, a.get("class", ""), []))
        elif tag == "td":
            self._cell = []
        if "id" in a and tag != "img":
            self._open_ids.append([a["id"], a, tag, []])

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        for opened in self._open_ids:
            opened[3].append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1][2].append("".join(self._cell))
            self._cell = None
        if self._open_ids and self._open_ids[-1][2] == tag:
            key, attrs, _, text = self._open_ids.pop()
            self.by_id[key] = (attrs, "".join(text))

    def table(self, table_id: str) -> list[tuple[str, list[str]]]:
        return [(c, cells) for t, c, cells in self.rows if t == table_id and cells]


def png(src: str) -> np.ndarray:
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix), src[:40]
    image = Image.open(io.BytesIO(base64.b64decode(src[len(prefix):])))
    assert image.format == "PNG"
    return np.asarray(image.convert("RGB"))


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = report.write(build_inputs(), tmp_path_factory.mktemp("reports"))
    return path, path.read_text(encoding="utf-8")


def test_every_section_is_there_with_plots_that_decode(written: tuple[Path, str]) -> None:
    path, text = written
    assert path.parts[-3:] == ("mammo", DATE, "index.html")
    page = Page(text)
    assert page.sections == SECTIONS
    assert len(page.images) == 4  # scores, metadata shares, drift over time, artifact rates
    for img in page.images:
        pixels = png(img["src"])
        assert pixels.shape[0] > 200 and pixels.shape[1] > 300 and img["alt"]
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20  # drawn, not a blank canvas


def test_the_verdict_says_the_alert_was_raised_with_the_counts(written: tuple[Path, str]) -> None:
    page = Page(written[1])
    attrs, text = page.by_id["verdict"]
    assert attrs["data-verdict"] == "alert"
    assert text == (f"Alert raised, drift sustained in metadata, prediction: {REASON}. "
                    "Tonight: judged on 60 exams, drifted in metadata, prediction, qc.")
    assert page.by_id["night-exams"][1] == "60" and page.by_id["reference-exams"][1] == "300"


def test_the_mismatch_row_is_shown_as_mismatch_with_sha_prefixes_only(written: tuple[Path, str]) -> None:
    rows = Page(written[1]).table("integrity-rows")
    assert [(c, cells[2]) for c, cells in rows] == [("status-ok", "ok"), ("status-mismatch", "mismatch"),
                                                    ("status-unknown", "unknown")]
    mismatch = rows[1][1]
    assert mismatch[:2] == ["mammo_screening", "6"] and mismatch[5:7] == ["0123456789ab", "fedcba987654"]
    assert EXPECTED_SHA not in written[1] and ACTUAL_SHA not in written[1]


def test_no_exam_id_is_shown_and_values_are_escaped(written: tuple[Path, str]) -> None:
    text = written[1]
    assert "PSEUDO-" not in text
    page = Page(text)
    assert "script" not in page.tags
    details = [cells[8] for _, cells in page.table("drifted-tests")]
    assert f"new value {BAD_SOFTWARE!r}" in details  # shown as text, not run as markup


def test_tonights_drifted_tests_are_listed_smallest_q_first(written: tuple[Path, str]) -> None:
    page = Page(written[1])
    rows = page.table("drifted-tests")
    assert [(cells[0], cells[1], cells[2]) for _, cells in rows] == [
        ("metadata", "kvp", "ks"), ("prediction", "score", "ks"), ("metadata", "manufacturer", "chi2"),
        ("qc", f"{DEVICES[0]}|foreign_object", "binomial"), ("metadata", "software_version", "chi2")]
    assert rows[2][1][5] == "2e-07" and rows[2][1][8] == "new value 'SIEMENS'"
    assert {cells[7] for _, cells in rows} == {"yes"}
    # the score's PSI is over its limit: listed apart, for information, not as drift
    assert [cells[:3] for _, cells in page.table("psi-above")] == [["prediction", "score", "0.62"]]


def test_prediction_tests_and_flag_rates_sit_beside_the_scores(written: tuple[Path, str]) -> None:
    page = Page(written[1])
    assert [cells[1:3] for _, cells in page.table("prediction-tests")] == [
        ["score", "ks"], ["score", "psi"], ["flag_rate", "binomial"]]
    inputs = build_inputs()
    night = (inputs.night["score"] >= 0.42).mean()
    assert f"night {night:.1%}" in page.by_id["scores"][1]


def test_medians_compare_reference_and_night(written: tuple[Path, str]) -> None:
    inputs = build_inputs()
    medians = {cells[0]: cells[1:] for _, cells in Page(written[1]).table("medians")}
    reference, night = inputs.reference["kvp"].median(), inputs.night["kvp"].median()
    assert medians["kvp"] == [f"{reference:.3g}", f"{night:.3g}", "60 of 60"]
    assert float(medians["kvp"][1]) - float(medians["kvp"][0]) > 2  # the shifted night shows


def test_tonights_artifact_rates_mark_the_drifted_device(written: tuple[Path, str]) -> None:
    rows = Page(written[1]).table("artifacts-tonight")
    assert len(rows) == 4
    drifted = [cells[:2] for c, cells in rows if c == "drifted"]
    assert drifted == [[DEVICES[0], "foreign_object"]]


def test_a_rerun_replaces_the_night_and_leaves_no_staging(tmp_path: Path) -> None:
    report.write(build_inputs(), tmp_path)
    path = report.write(build_inputs(model_version="8"), tmp_path)
    task = tmp_path / "mammo"
    folders = [p for p in task.iterdir() if p.is_dir() and not p.is_symlink()]
    assert len(folders) == 1 and (task / DATE).resolve() == folders[0].resolve()
    assert sorted(p.name for p in task.iterdir() if p not in folders) == [DATE, "index.html"]
    assert "version 8" in path.read_text(encoding="utf-8")
    assert sorted(p.name for p in folders[0].iterdir()) == ["index.html", "summary.json"]


def test_the_index_lists_every_night_newest_first_with_its_verdict(tmp_path: Path) -> None:
    report.write(build_inputs(), tmp_path)
    stable = build_inputs("2026-03-13", seed=1, tests=[TESTS[6]], alert=Alert(False, (), "no drift"),
                          statuses=[])
    report.write(stable, tmp_path)  # an older night written last
    index = tmp_path / "mammo" / "index.html"
    page = Page(index.read_text(encoding="utf-8"))
    rows = page.table("reports")
    assert [cells[0] for _, cells in rows] == [DATE, "2026-03-13"]
    assert [c for c, _ in rows] == ["verdict-alert", "verdict-stable"]
    assert rows[0][1][1] == verdict(build_inputs())[1] and rows[0][1][1].startswith("Alert raised")
    assert rows[1][1][1] == "Stable: judged on 60 exams, no test drifted tonight; not sustained, no alert."
    assert '<a href="2026-03-13/index.html">' in index.read_text(encoding="utf-8")
    summary = json.loads((tmp_path / "mammo" / DATE / "summary.json").read_text(encoding="utf-8"))
    assert summary["drifted_families"] == ["metadata", "prediction", "qc"]


def test_missing_columns_and_empty_inputs_read_not_recorded(tmp_path: Path) -> None:
    gone = ["score", "manufacturer", "model_name", "software_version", "kvp", "img_mean"]
    inputs = build_inputs(tests=[], history=pd.DataFrame(), statuses=[], qc_rates=pd.DataFrame(),
                          integrity=[], alert=Alert(False, (), ""))
    night = inputs.night.drop(columns=gone).assign(exposure_mas=np.nan)
    inputs = dataclasses.replace(inputs, reference=inputs.reference.drop(columns=gone), night=night)
    page = Page(report.write(inputs, tmp_path).read_text(encoding="utf-8"))
    assert page.sections == SECTIONS and page.images == []
    medians = {cells[0]: cells[1:] for _, cells in page.table("medians")}
    assert medians["kvp"] == ["not recorded", "not recorded", "0 of 60"]
    assert medians["exposure_mas"][1:] == ["not recorded", "0 of 60"]  # all NaN tonight
    assert medians["exposure_mas"][0] != "not recorded"
    for section in ("scores", "metadata", "drift", "artifacts"):
        assert "not recorded" in page.by_id[section][1]
    assert page.by_id["verdict"][0]["data-verdict"] == "stable"


def test_a_partly_recorded_column_is_plotted(tmp_path: Path) -> None:
    inputs = build_inputs()
    night = inputs.night.assign(manufacturer=np.nan).drop(columns=["software_version"])
    page = Page(report.write(dataclasses.replace(inputs, night=night), tmp_path).read_text(encoding="utf-8"))
    assert len(page.images) == 4


@pytest.mark.parametrize(("alert", "status", "tests", "kind"), [
    (Alert(False, ("image",), "image drifted on 3 of 3 nights"), NightStatus(DATE, ("image",)), TESTS,
     "sustained"),
    (Alert(False, (), ""), NightStatus(DATE, ("metadata",)), TESTS, "drifted"),
    (Alert(False, (), ""), NightStatus(DATE, (), judged=False), TESTS, "not-judged"),
    (Alert(False, (), ""), NightStatus(DATE, ()), [TESTS[1], TESTS[6]], "stable"),  # PSI alone is no drift
])
def test_the_verdict_follows_the_alert_and_tonights_status(alert: Alert, status: NightStatus,
                                                           tests: list[DriftTest], kind: str) -> None:
    assert verdict(build_inputs(alert=alert, statuses=[status], tests=tests))[0] == kind


def test_shares_fold_rare_values_into_other_and_count_missing_as_not_recorded() -> None:
    reference = pd.DataFrame({"manufacturer": [f"V{i}" for i in range(10)] * 2})
    night = pd.DataFrame({"manufacturer": ["V0", "V0", None, "V1"]})
    table = plots.shares(reference, night, "manufacturer")
    assert len(table) == plots.TOP_VALUES and table.index[-1] == "other"
    assert table.loc["V0", "night"] == 0.5 and table.loc["not recorded", "night"] == 0.25
    assert table["reference"].sum() == pytest.approx(1.0) and table["night"].sum() == pytest.approx(1.0)


@pytest.mark.parametrize("changes", [{"study_date": "14/03/2026"}, {"task": "../etc"},
                                     {"operating_point": 1.5}])
def test_bad_inputs_are_refused_and_nothing_is_published(tmp_path: Path, changes: dict[str, Any]) -> None:
    with pytest.raises(PermanentError):
        report.write(build_inputs(**changes), tmp_path)
    assert not any(tmp_path.rglob("index.html"))


QUIET = Alert(False, (), "no family drifted on 2 of the last 3 judged nights")
EXPOSURE = DriftTest("metadata", "exposure_mas", "ks", 0.1, 0.2, 0.01, 300, 60, 0.5, False, "")


def night_page(tmp_path: Path, **changes: Any) -> tuple[Page, dict[str, Any]]:
    """The written page and summary.json of the fabricated night with `changes`."""
    path = report.write(build_inputs(**changes), tmp_path)
    return (Page(path.read_text(encoding="utf-8")),
            json.loads((path.parent / "summary.json").read_text(encoding="utf-8")))


def test_psi_above_its_limit_alone_is_no_drift_in_the_banner_or_the_table(tmp_path: Path) -> None:
    score_ks = dataclasses.replace(TESTS[0], q_value=0.3, drifted=False)
    page, summary = night_page(tmp_path, tests=[score_ks, TESTS[1], TESTS[2], TESTS[6]], alert=QUIET,
                               statuses=[NightStatus(DATE, ())])
    attrs, text = page.by_id["verdict"]
    assert attrs["data-verdict"] == "stable"
    assert page.table("drifted-tests") == []
    assert page.by_id["drifted-tests"][1] == "No test drifted tonight."
    assert text == "Stable: judged on 60 exams, no test drifted tonight; not sustained, no alert."
    assert page.by_id["psi-heading"][1] == "PSI above 0.25, shown for information, not drift"
    assert [(c, cells[:4]) for c, cells in page.table("psi-above")] == [
        ("informational", ["prediction", "score", "0.62", "0.25"])]
    psi_row = [(c, cells) for c, cells in page.table("prediction-tests") if cells[2] == "psi"]
    assert [(c, cells[7]) for c, cells in psi_row] == [
        ("informational", "no (PSI above its limit: information only)")]
    assert summary["verdict"] == "stable" and summary["drifted_families"] == []


def test_drift_in_one_family_is_named_by_the_banner_and_listed_test_by_test(tmp_path: Path) -> None:
    tests = [*TESTS[1:7], EXPOSURE]  # metadata drifts (three tests); PSI over its limit; image quiet
    page, summary = night_page(tmp_path, tests=tests, alert=QUIET,
                               statuses=[NightStatus(NIGHTS[-2], ()), NightStatus(DATE, ("metadata",))])
    attrs, text = page.by_id["verdict"]
    assert attrs["data-verdict"] == "drifted"
    rows = page.table("drifted-tests")
    assert [(c, cells[0], cells[1]) for c, cells in rows] == [
        ("", "metadata", "kvp"), ("", "metadata", "manufacturer"), ("", "metadata", "software_version")]
    assert text == "Drifted tonight in metadata: judged on 60 exams; not sustained, no alert."
    assert [cells for _, cells in page.table("nights")] == [
        [DATE, "yes", "metadata"], [NIGHTS[-2], "yes", "none"]]
    assert [cells[1] for _, cells in page.table("psi-above")] == ["score"]
    assert summary["drifted_families"] == ["metadata"]


def test_a_night_not_judged_counts_no_drift_and_shows_its_small_q_apart(tmp_path: Path) -> None:
    page, summary = night_page(tmp_path, alert=Alert(False, (), f"{DATE} not judged: too few exams"),
                               statuses=[NightStatus(DATE, ("metadata", "prediction", "qc"), judged=False)])
    attrs, text = page.by_id["verdict"]
    assert attrs["data-verdict"] == "not-judged"
    assert page.table("drifted-tests") == []
    assert text == ("Not judged: too few exams tonight (60), so no test counts as drift; "
                    "not sustained, no alert.")
    assert [cells[1] for _, cells in page.table("not-counted")] == [
        "kvp", "score", "manufacturer", f"{DEVICES[0]}|foreign_object", "software_version"]
    assert [cells[1:] for _, cells in page.table("nights")] == [["no (too few exams)", "not counted"]]
    rows = page.table("prediction-tests") + page.table("artifacts-tonight")
    assert "drifted" not in {c for c, _ in rows}
    assert not [cells for _, cells in rows if "yes" in cells]
    assert summary["drifted_families"] == []


def test_a_sustained_drift_banner_says_what_tonight_showed(tmp_path: Path) -> None:
    alert = Alert(False, ("image",), "image drifted on 3 of the last 3 nights; alert already raised on "
                  "2026-03-12 (cooldown 7 days)")
    page, _ = night_page(tmp_path, alert=alert, tests=[TESTS[1], TESTS[6]], statuses=[NightStatus(DATE, ())])
    assert page.by_id["verdict"][1] == (f"Drift sustained in image, no new alert: {alert.reason}. "
                                        "Tonight: judged on 60 exams, no test drifted.")
    assert page.table("drifted-tests") == []


def xspan(ax: Any) -> tuple[pd.Timestamp, pd.Timestamp]:
    from matplotlib.dates import num2date

    low, high = ax.get_xlim()
    return pd.Timestamp(num2date(low)).tz_localize(None), pd.Timestamp(num2date(high)).tz_localize(None)


def covers(ax: Any, first: str, last: str) -> bool:
    """The axis shows first..last and no more than a day beyond either."""
    (low, high), day = xspan(ax), pd.Timedelta(days=1)
    first_night, last_night = pd.Timestamp(first), pd.Timestamp(last)
    return first_night - day < low <= first_night and last_night <= high < last_night + day


def test_the_time_series_span_the_nights_given() -> None:
    rng = np.random.default_rng(0)
    drift = plots.drift_figure(history(rng), 0.01)
    rates = qc_rates(rng)
    qc = plots.qc_figure(rates.assign(rate=rates["rate"].where(rates["code"] == "foreign_object")))
    assert drift is not None and qc is not None
    panels = [ax for ax in qc.axes if ax.axison]
    assert len(panels) == 2
    for ax in [*drift.axes[:1], *panels]:
        assert covers(ax, NIGHTS[0], NIGHTS[-1]), xspan(ax)  # not 1970 for the panel without a point
    wider = plots.nights_of(["2026-03-01"], [DATE])
    assert covers(plots.drift_figure(history(rng), 0.01, wider).axes[0], "2026-03-01", DATE)


def test_a_single_night_has_a_one_day_axis_labelled_with_its_date() -> None:
    tonight = history(np.random.default_rng(0)).query("study_date == @DATE")
    figure = plots.drift_figure(tonight, 0.01)
    assert figure is not None
    ax = figure.axes[0]
    assert covers(ax, DATE, DATE), xspan(ax)  # not the four years autoscaling gives one point
    figure.canvas.draw()
    assert [t.get_text() for t in ax.get_xticklabels()] == [DATE]


def test_the_reports_plots_span_every_night_of_its_table(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """History recorded for tonight only, nights listed for ten: the plots show the ten."""
    drawn: list[Any] = []
    png = plots._png
    monkeypatch.setattr(plots, "_png", lambda figure: (drawn.append(figure), png(figure))[1])
    ten = [str(d.date()) for d in pd.date_range(end=DATE, periods=10)]
    rng = np.random.default_rng(0)
    report.write(build_inputs(history=history(rng).query("study_date == @DATE"),
                              qc_rates=qc_rates(rng).query("study_date == @DATE"),
                              statuses=[NightStatus(n, ()) for n in ten]), tmp_path)
    series = [ax for figure in drawn for ax in figure.axes if ax.axison and ax.get_xlabel() == "study date"]
    assert len(series) == 3  # drift over time, two QC codes
    assert all(covers(ax, ten[0], DATE) for ax in series), [xspan(ax) for ax in series]
