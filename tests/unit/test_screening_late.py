"""Late arrivals (issue 18, item 8): a study that reaches the gateway after its night was
planned, or is still arriving while it is planned, is screened by the next night's run
(pipelines/screening/late.py, batches.plan, run.run), once, with the rest of its night.

On the in-memory gateway of tests/unit/test_screening_batches.py (its `night` fixture: five
screenable studies and one missing a view, dated NIGHT), given dates here.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from dicom_builders import screening_exam
from test_screening_batches import NIGHT, database, night  # noqa: F401  (fixtures)

from pipelines import config, db
from pipelines.screening import batches, late, run
from pipelines.screening.writeback import encode

NEXT = "2026-03-15"


@pytest.fixture
def gateway(night: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:  # noqa: F811
    """The night's gateway, with a study date per study (NIGHT unless set) and studies that
    are still arriving (not stable)."""
    orthanc = night["orthanc"]
    orthanc.dates, orthanc.arriving = {}, set()
    study = orthanc.study

    def find_studies(study_date: str, modality: str = "MG") -> list[str]:
        return [sid for sid in reversed(orthanc.studies)
                if orthanc.dates.get(sid, NIGHT).replace("-", "") == study_date]

    monkeypatch.setattr(orthanc, "find_studies", find_studies)
    monkeypatch.setattr(orthanc, "study", lambda sid: {**study(sid), "IsStable": sid not in orthanc.arriving})
    monkeypatch.setattr(late, "OrthancClient", lambda s=None: orthanc)
    monkeypatch.setenv("RADFLOW_ORTHANC_STABLE_AGE_S", "0")
    monkeypatch.setattr(batches, "ARRIVAL_MARGIN_S", 1.5)
    config.reset_settings()
    return orthanc


def _arrive(orthanc: Any, sid: str, n: int, date: str = NIGHT) -> None:
    """Study `sid` (4 views) reaches the gateway, dated `date`."""
    exam = screening_exam(90 + n, 32)
    orthanc.files.update({f"{sid}-i{k}": encode(ds) for k, ds in enumerate(exam)})
    orthanc.studies[sid] = [f"{sid}-i{k}" for k in range(len(exam))]
    orthanc.uids[sid] = str(exam[0].StudyInstanceUID)
    orthanc.dates[sid] = date


def _results(date: str) -> list[str]:
    with db.get_engine().connect() as conn:
        return sorted(conn.execute(sa.select(db.exam_results.c.exam_id)
                                   .where(db.exam_results.c.study_date == date)).scalars())


def test_a_study_that_arrives_after_its_night_is_screened_by_the_next_nights_run(gateway: Any) -> None:
    first = run.run(NIGHT, notify=False)
    assert (first.exams, len(first.quarantined), first.caught_up) == (5, 1, [])
    screened = _results(NIGHT)
    _arrive(gateway, "77" + "e" * 38, 1)  # after the night was screened

    tonight = run.run(NEXT, notify=False)
    assert tonight.exams == 0  # NEXT has no study of its own
    (again,) = tonight.caught_up
    assert (again.date, again.exams, len(again.quarantined)) == (NIGHT, 6, 1)
    after = _results(NIGHT)
    assert len(after) == len(set(after)) == 6 and set(screened) < set(after)  # one more, none twice
    assert again.write_back["exams"] == 6
    assert late.late_nights(NEXT) == []  # nothing left: the next run screens NIGHT no more
    assert run.run(NEXT, notify=False).caught_up == []


def test_a_study_still_arriving_is_left_out_and_screened_by_the_next_night(gateway: Any) -> None:
    arriving = "88" + "d" * 38
    _arrive(gateway, arriving, 2)
    gateway.arriving.add(arriving)  # its images still coming in: waited for, then left out
    first = run.run(NIGHT, notify=False)
    assert (first.exams, len(first.quarantined), first.arriving) == (5, 1, 1)
    assert all(arriving[:8] not in q.id for q in first.quarantined)  # not quarantined as incomplete

    gateway.arriving.clear()
    assert late.late_nights(NEXT) == [late.LateNight(NIGHT, late=1, planned=6)]
    (again,) = run.run(NEXT, notify=False).caught_up
    assert (again.exams, len(again.quarantined), again.arriving) == (6, 1, 0)
    assert len(_results(NIGHT)) == 6


def test_a_study_that_becomes_stable_while_the_plan_waits_is_planned(
        gateway: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    arriving = "99" + "c" * 38
    _arrive(gateway, arriving, 3)
    gateway.arriving.add(arriving)
    sleep = batches.time.sleep

    def stored_meanwhile(seconds: float) -> None:
        gateway.arriving.discard(arriving)  # its last image came in while the plan waited
        sleep(0.01)

    monkeypatch.setattr(batches.time, "sleep", stored_meanwhile)
    planned = batches.plan(NIGHT)
    assert (planned.exams, planned.arriving) == (7, 0)


def test_only_completed_nights_within_the_window_are_looked_at(
        gateway: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    batches.plan(NIGHT)  # planned, never merged: its run is not complete (a retry's, not ours)
    _arrive(gateway, "66" + "b" * 38, 4)
    assert late.late_nights(NEXT) == []
    run.run(NIGHT, notify=False)
    _arrive(gateway, "55" + "a" * 38, 5)
    assert late.late_nights(NEXT) == [late.LateNight(NIGHT, late=1, planned=7)]
    assert late.late_nights("2026-03-22") == []  # 8 days later: outside the 7-day window
    assert late.late_nights("2026-03-21") != []
    assert late.late_nights(NEXT, days=0) == []
    monkeypatch.setenv("RADFLOW_SCREENING_LATE_DAYS", "0")
    config.reset_settings()
    assert run.run(NEXT, notify=False).caught_up == []
