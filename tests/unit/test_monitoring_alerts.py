"""The sustained-drift rule over sequences of nights: a noisy night never alerts, a drift
alerts once when it becomes sustained, stays quiet while it persists, and alerts again only
after the cooldown; nights with too few exams are skipped."""

from __future__ import annotations

import datetime

import pytest

from pipelines.monitoring.alerts import decide
from pipelines.monitoring.records import Alert, NightStatus

START = datetime.date(2026, 3, 1)


def nights(*verdicts: str | None, start: datetime.date = START) -> list[NightStatus]:
    """One night per calendar day: "" calm, "embedding,qc" drifted families, None not judged."""
    return [NightStatus((start + datetime.timedelta(days=i)).isoformat(),
                        tuple(v.split(",")) if v else (), judged=v is not None)
            for i, v in enumerate(verdicts)]


def replay(history: list[NightStatus], cooldown: int = 7) -> list[bool]:
    """Decide every night in turn, as the nightly DAG does, feeding back raised alerts."""
    raised: dict[str, tuple[str, ...]] = {}
    for i in range(len(history)):
        alert = decide(history[: i + 1], window=3, min_nights=2, cooldown=cooldown, previous_alerts=raised)
        if alert.raised:
            raised[history[i].study_date] = alert.sustained_families
    return [night.study_date in raised for night in history]


def test_one_noisy_night_never_raises() -> None:
    assert replay(nights("", "embedding", "", "", "metadata", "", "qc")) == [False] * 7


def test_two_consecutive_drifted_nights_raise_on_the_second() -> None:
    history = nights("", "embedding", "embedding")
    alert = decide(history, window=3, min_nights=2, cooldown=7, previous_alerts={})
    assert alert == Alert(True, ("embedding",), "embedding drifted on 2 of the last 3 nights")
    assert replay(history) == [False, False, True]


def test_drift_on_two_of_three_nights_with_a_gap_raises() -> None:
    assert replay(nights("", "prediction", "", "prediction")) == [False, False, False, True]


def test_persisting_drift_does_not_raise_again_the_next_nights() -> None:
    history = nights("", "embedding", "embedding", "embedding", "embedding")
    assert replay(history) == [False, False, True, False, False]
    alert = decide(history, window=3, min_nights=2, cooldown=7, previous_alerts={"2026-03-03": ["embedding"]})
    assert not alert.raised and alert.sustained_families == ("embedding",)
    assert "2026-03-03" in alert.reason


def test_a_new_family_within_the_cooldown_still_raises() -> None:
    # the embedding alert of night 2 must not hide the vendor change that starts on night 4
    assert replay(nights("embedding", "embedding", "", "metadata", "metadata")) == [False, True, False,
                                                                                      False, True]


def test_the_same_family_within_the_cooldown_does_not_raise_again() -> None:
    history = nights("metadata", "metadata", "", "", "metadata", "metadata")
    assert replay(history) == [False, True] + [False] * 4


def test_persisting_drift_raises_again_after_the_cooldown() -> None:
    history = nights(*["embedding"] * 12)
    # raised on day 2; days 3-9 are within 7 days of it; day 10 is 8 days later
    assert [i for i, r in enumerate(replay(history, cooldown=7)) if r] == [1, 9]


def test_drift_returning_after_the_cooldown_raises_again() -> None:
    history = nights("qc", "qc", *[""] * 8, "qc", "qc")
    assert [i for i, r in enumerate(replay(history)) if r] == [1, 11]


def test_unjudged_nights_are_skipped_not_counted_as_calm() -> None:
    history = nights("", "embedding", None, None, "embedding")
    assert replay(history) == [False, False, False, False, True]
    unjudged = decide(history[:4], window=3, min_nights=2, cooldown=7, previous_alerts={})
    assert not unjudged.raised and "not judged" in unjudged.reason


def test_an_unjudged_night_with_drifted_families_does_not_count() -> None:
    unjudged = NightStatus("2026-03-01", ("embedding",), judged=False)
    history = [unjudged, *nights("embedding", start=START.replace(day=2))]
    assert not decide(history, window=3, min_nights=2, cooldown=7, previous_alerts={}).raised


def test_rerunning_a_night_that_raised_gives_the_same_answer() -> None:
    history = nights("", "embedding", "embedding")
    again = decide(history, window=3, min_nights=2, cooldown=7, previous_alerts={"2026-03-03": ["embedding"]})
    assert again.raised


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="empty history"):
        decide([], window=3, min_nights=2, cooldown=7, previous_alerts={})
    with pytest.raises(ValueError, match="min_nights 4, window 3"):
        decide(nights("embedding"), window=3, min_nights=4, cooldown=7, previous_alerts={})
    with pytest.raises(ValueError, match="2026/03/01"):
        decide(nights("embedding"), window=3, min_nights=1, cooldown=7,
               previous_alerts={"2026/03/01": ["embedding"]})
