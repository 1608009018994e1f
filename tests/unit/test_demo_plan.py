"""The demo's plan: a fixed training archive whatever the day, tonight's night from the day."""

from __future__ import annotations

import datetime as dt

from pipelines.demo import ARCHIVE_END, plan


def test_the_training_archive_is_the_same_on_any_day_and_only_tonight_moves() -> None:
    monday, later = dt.date(2026, 12, 7), dt.date(2027, 3, 1)
    training, tonight = plan(200, 3, monday)
    assert training == plan(200, 3, later)[0]
    assert training == [("2026-01-30", 80), ("2026-01-31", 80)]
    assert training[-1][0] == ARCHIVE_END.isoformat()
    assert tonight == ("2026-12-06", 40)
    assert plan(200, 3, later)[1] == ("2027-02-28", 40)


def test_every_exam_is_planned_once() -> None:
    training, (_, night) = plan(97, 4, dt.date(2026, 12, 7))
    assert sum(n for _, n in training) + night == 97
    assert [d for d, _ in training] == ["2026-01-29", "2026-01-30", "2026-01-31"]
