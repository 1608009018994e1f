"""Sustained drift: when the nights' drift verdicts become an alert (and a retraining trigger).

The rule, read on each night after its drift assessment:

1. Only judged nights count (a night with too few exams neither drifts nor breaks a run).
   Tonight must be judged, or nothing is decided.
2. A family is *sustained* when it drifted on at least `min_nights` of the last `window`
   judged nights, tonight included. One noisy night therefore never alerts.
3. An alert is *raised* when some family is sustained tonight and no alert for that
   family was raised in the `cooldown` calendar days before tonight. The cooldown is per
   family: a false alarm on the embeddings must not hide a vendor change in the metadata
   that starts a few days later. Dates are compared by calendar, so a gap in the nights
   does not stretch the cooldown.

So a drift alerts on the night it becomes sustained; while it persists the cooldown keeps
it quiet, and if it still persists after the cooldown it alerts once more (a retraining
that did not fix it is worth a second notice). Alerts dated tonight or later are ignored,
so re-running a night gives the same answer.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence

from pipelines.monitoring.records import FAMILIES, Alert, NightStatus


def decide(
    history: Sequence[NightStatus],
    window: int,
    min_nights: int,
    cooldown: int,
    previous_alerts: Mapping[str, Sequence[str]],
) -> Alert:
    """Whether tonight (the last item of history) raises a sustained-drift alert.

    Args:
        history: night verdicts sorted by study date; the last one is tonight.
        window: how many of the latest judged nights are read.
        min_nights: a family is sustained when it drifted on at least this many of them.
        cooldown: no alert for a family within this many days after a previous one for it.
        previous_alerts: the alerts raised before: YYYY-MM-DD -> their sustained families.

    Returns:
        The decision, with the sustained families and a one-line reason.

    Raises:
        ValueError: empty history, window or min_nights below 1, min_nights above window,
            or a negative cooldown.
    """
    if not history:
        raise ValueError("decide needs at least tonight's status, got an empty history")
    if window < 1 or not 1 <= min_nights <= window or cooldown < 0:
        raise ValueError(f"need 1 <= min_nights <= window and cooldown >= 0, got min_nights "
                         f"{min_nights}, window {window}, cooldown {cooldown}")
    tonight = history[-1]
    if not tonight.judged:
        return Alert(False, (), f"{tonight.study_date} not judged: too few exams")
    nights = [s for s in history if s.judged][-window:]
    counts = {f: sum(f in s.drifted_families for s in nights) for f in FAMILIES}
    sustained = tuple(f for f in FAMILIES if counts[f] >= min_nights)
    if not sustained:
        return Alert(False, (), f"no family drifted on {min_nights} of the last {len(nights)} judged nights")
    what = ", ".join(f"{f} drifted on {counts[f]} of the last {len(nights)} nights" for f in sustained)
    recent = {f: _last_alert(tonight.study_date, previous_alerts, f, cooldown) for f in sustained}
    fresh = [f for f in sustained if recent[f] is None]
    if not fresh:
        last = max((d for d in recent.values() if d), key=_day)
        return Alert(False, sustained, f"{what}; alert already raised on {last} (cooldown {cooldown} days)")
    return Alert(True, sustained, what)


def _last_alert(tonight: str, alerts: Mapping[str, Sequence[str]], family: str, cooldown: int) -> str | None:
    """The latest alert for `family` within `cooldown` days before tonight, if any."""
    day = _day(tonight)
    before = [d for d, families in alerts.items()
              if family in families and 0 < (day - _day(d)).days <= cooldown]
    return max(before, key=_day) if before else None


def _day(date: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(date)
    except ValueError as error:
        raise ValueError(f"dates must be YYYY-MM-DD, got {date!r}") from error
