"""`radflow outcomes` and the monitoring report's "Realised performance": on synthetic
screening with a KNOWN sensitivity, specificity and AUC, the reported intervals contain
them; counts split by model version and month; the share still without an outcome; the
alert on the champion's lower bound; the section in the nightly report.

The exams are stored as screening stores them and their outcomes arrive through the real
import (a pathology CSV and a RIS export of follow-up reports), as a hospital sends them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from pipelines import cli, config
from pipelines.model_policy import POLICY_FILE, OutcomesPolicy
from pipelines.monitoring import run
from pipelines.monitoring.realised import RealisedSection, section
from pipelines.outcomes.bootstrap import realised_metrics
from pipelines.outcomes.imports import import_follow_up, import_pathology
from pipelines.outcomes.realised import ALL_MONTHS, check_sensitivity, realised_performance
from pipelines.outcomes.summary import NO_OUTCOMES, summarise
from tests.unit import outcome_builders as sim
from tests.unit.test_monitoring_report import build_inputs
from tests.unit.test_monitoring_run import database, monitored, night  # noqa: F401
from tests.unit.test_monitoring_run import exams as night_exams

SENSITIVITY, SPECIFICITY = 0.85, 0.90


def _arrive(tmp_path: Path, exams: list[sim.SimExam]) -> None:
    for out in (import_pathology(sim.pathology_file(tmp_path / "pathology.csv", exams)),
                import_follow_up(sim.ris_file(tmp_path / "ris.csv", exams))):
        assert out.rejected == []


def _policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **outcomes: Any) -> None:
    document = yaml.safe_load(POLICY_FILE.read_text())
    document["models"]["mammo-screening"]["outcomes"] = outcomes
    path = tmp_path / "registered_models.yaml"
    path.write_text(yaml.safe_dump(document))
    monkeypatch.setenv("RADFLOW_REGISTRY_POLICY_FILE", str(path))
    config.reset_settings()


@pytest.mark.usefixtures("database")
def test_synthetic_outcomes_reproduce_the_known_sensitivity_and_specificity(tmp_path: Path) -> None:
    exams = sim.simulate(n=2000, prevalence=0.05, sensitivity=SENSITIVITY, specificity=SPECIFICITY, seed=16)
    sim.screen(exams)
    _arrive(tmp_path, exams)
    _, _, true_auc = sim.truth(SENSITIVITY, SPECIFICITY)

    total = realised_performance("mammo", resamples=2000, seed=7).total("3")
    assert total is not None
    decided = [e for e in exams if e.record == sim.OUTCOME]
    assert (total.exams_screened, total.exams_with_outcome) == (2000, len(decided))
    assert total.positives == sum(e.cancer for e in decided) >= 60
    for estimate, true, close in ((total.sensitivity, SENSITIVITY, 0.08),
                                  (total.specificity, SPECIFICITY, 0.02), (total.auc, true_auc, 0.03)):
        assert estimate.ci_low is not None and estimate.ci_high is not None and estimate.value is not None
        assert estimate.ci_low <= true <= estimate.ci_high, (estimate, true)
        assert abs(estimate.value - true) < close
        assert estimate.ci_high - estimate.ci_low < 0.25  # an interval, not everything
    # the point estimates are the exams' own shares, at the flags stored that night
    cancers = [e for e in decided if e.cancer]
    assert total.sensitivity.value == pytest.approx(sum(e.flagged for e in cancers) / len(cancers))


@pytest.mark.usefixtures("database")
def test_rows_split_by_version_and_month_with_the_share_still_without_an_outcome(tmp_path: Path) -> None:
    exams = sim.simulate(n=600, prevalence=0.2, seed=21, switch="2026-03-01")
    sim.screen(exams)
    _arrive(tmp_path, exams)
    perf = realised_performance("mammo", resamples=200, seed=1)

    expected = Counter((e.version, e.study_date[:7]) for e in exams)
    assert [(r.model_version, r.month) for r in perf.rows] == [
        ("3", "2026-02"), ("3", "2026-01"), ("3", ALL_MONTHS), ("4", "2026-03"), ("4", ALL_MONTHS)]
    for r in perf.rows:
        cell = [e for e in exams if e.version == r.model_version
                and (r.month == ALL_MONTHS or e.study_date[:7] == r.month)]
        decided = [e for e in cell if e.record == sim.OUTCOME]
        assert r.exams_screened == len(cell) == (expected[(r.model_version, r.month)] or len(cell))
        assert (r.exams_with_outcome, r.positives, r.pending) == (
            len(decided), sum(e.cancer for e in decided), sum(e.record == sim.PENDING for e in cell))
        assert r.without_outcome_share == pytest.approx(1 - len(decided) / len(cell))
        cancers = [e for e in decided if e.cancer]
        assert r.sensitivity.value == pytest.approx(sum(e.flagged for e in cancers) / len(cancers))
    vias = Counter(e.via for e in exams)
    assert perf.outcomes == 2 * vias["follow-up"] + vias["pathology"]  # a follow-up names both breasts


def test_a_missing_class_gives_no_metric_and_says_why() -> None:
    sens, spec, auc = realised_metrics([0, 0, 0], [True, False, False], [0.9, 0.1, 0.2], resamples=50, seed=0)
    assert (sens.value, auc.value) == (None, None) and "no exam with a positive outcome" in str(sens.reason)
    assert spec.value == pytest.approx(2 / 3) and spec.ci_low is not None
    again = realised_metrics([0, 0, 0], [True, False, False], [0.9, 0.1, 0.2], resamples=50, seed=0)
    assert again == (sens, spec, auc)  # seeded


def test_the_intervals_cover_the_truth_about_95_percent_of_the_time() -> None:
    t, mu, true_auc = sim.truth(SENSITIVITY, SPECIFICITY)
    hits = Counter()
    reps = 150
    for r in range(reps):
        rng = np.random.default_rng(1000 + r)
        cancer = rng.random(2000) < 0.05
        z = rng.normal(size=2000) + mu * cancer
        sens, spec, auc = realised_metrics(cancer.astype(int), z >= t, z, resamples=400, seed=r)
        hits.update(name for name, e, true in (("sens", sens, SENSITIVITY), ("spec", spec, SPECIFICITY),
                                               ("auc", auc, true_auc)) if e.ci_low <= true <= e.ci_high)
    assert all(0.88 <= hits[k] / reps <= 0.99 for k in ("sens", "spec", "auc")), hits


@pytest.mark.usefixtures("database")
def test_the_alert_fires_when_the_lower_bound_is_below_the_minimum_and_not_otherwise(tmp_path: Path) -> None:
    exams = sim.simulate(n=2000, seed=16)
    sim.screen(exams)
    _arrive(tmp_path, exams)
    perf = realised_performance("mammo", resamples=1000, seed=3)
    sens = perf.total("3").sensitivity  # type: ignore[union-attr]
    assert sens.ci_low is not None and sens.value is not None

    def check(minimum: float, exams: int = 10) -> Any:
        policy = OutcomesPolicy(min_sensitivity=minimum, min_exams_with_outcome=exams)
        return check_sensitivity(perf, "3", policy)

    above = check(sens.ci_low + 0.01)
    assert above.below and "below the minimum" in above.reason
    below = check(sens.ci_low - 0.01)
    assert not below.below and "at or above the minimum" in below.reason
    few = check(0.99, exams=5000)
    assert not few.below and "fewer than the 5000" in few.reason
    unseen = check_sensitivity(perf, "9", OutcomesPolicy(min_sensitivity=0.99, min_exams_with_outcome=1))
    assert not unseen.below


@pytest.mark.usefixtures("database")
def test_outcomes_command_prints_the_table_and_the_champion_check(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert summarise("mammo").note.startswith(NO_OUTCOMES)  # nothing imported: said, nothing checked
    exams = sim.simulate(n=400, prevalence=0.2, seed=5, switch="2026-02-15")
    sim.screen(exams)
    _arrive(tmp_path, exams)
    _policy(tmp_path, monkeypatch, min_sensitivity=0.99, min_exams_with_outcome=50, resamples=300, seed=11)
    assert cli.main(["outcomes", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (out["task"], out["model_name"], out["resamples"], out["seed"]) == (
        "mammo", "mammo-screening", 300, 11)
    assert out["check"]["model_version"] == "4" and out["alert"] is True  # the latest screened version
    row = out["rows"][0]
    assert set(row) >= {"model_version", "month", "exams_screened", "exams_with_outcome",
                        "without_outcome_share", "sensitivity", "specificity", "auc"}
    assert set(row["sensitivity"]) == {"value", "ci_low", "ci_high", "reason"}


@pytest.mark.usefixtures("database")
def test_the_report_section_renders_the_table_and_escapes(tmp_path: Path) -> None:
    exams = sim.simulate(n=300, prevalence=0.2, seed=8)
    sim.screen(exams)
    _arrive(tmp_path, exams)
    summary = summarise("mammo", "3")
    page = build_inputs(realised=RealisedSection(summary))
    html = section(page)
    assert '<section id="realised"><h2>Realised performance</h2>' in html
    assert html.count("<tr") == 1 + len(summary.performance.rows)
    assert "all months" in html and "stratified percentile bootstrap" in html
    assert "<script>" not in section(build_inputs(realised=RealisedSection(None, "not computed: <script>")))
    assert section(build_inputs()) == ""  # not computed that night: no section
    nothing = dataclasses.replace(summary.performance, rows=[], outcomes=0)
    empty = dataclasses.replace(summary, performance=nothing, check=None, note=NO_OUTCOMES)
    assert NO_OUTCOMES in section(build_inputs(realised=RealisedSection(empty)))


@pytest.mark.usefixtures("database")
def test_the_nightly_monitoring_computes_it_and_notifies_the_alert(
        request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mon = request.getfixturevalue("monitored")
    date = night(mon["state"], 0, night_exams(60, seed=600))
    quiet = run.run(date)
    assert not quiet.outcomes_alert and NO_OUTCOMES in quiet.outcomes_reason
    assert NO_OUTCOMES in Path(quiet.report).read_text()

    outcomes = sim.simulate(n=800, prevalence=0.2, seed=9, first=dt.date(2025, 10, 1))  # before the night
    sim.screen(outcomes)
    _arrive(tmp_path, outcomes)
    _policy(tmp_path, monkeypatch, min_sensitivity=0.5, min_exams_with_outcome=50, resamples=300)
    fine = run.run(date)
    assert not fine.outcomes_alert and "at or above the minimum" in fine.outcomes_reason
    assert 'id="realised-performance"' in Path(fine.report).read_text()
    assert mon["sent"] == []

    _policy(tmp_path, monkeypatch, min_sensitivity=0.99, min_exams_with_outcome=50, resamples=300)
    alerted = run.run(date)
    assert alerted.outcomes_alert and alerted.notified
    assert [n.kind for n in mon["sent"]] == ["outcomes"]
    notice = mon["sent"][0]
    assert notice.model_version == "3" and "below the minimum 0.99" in notice.details[0]
    assert 'data-alert="true"' in Path(alerted.report).read_text()
    run.run(date)  # the same evidence the next morning: the same notice id, which receivers drop
    assert mon["sent"][1].id == mon["sent"][0].id
