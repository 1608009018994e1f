"""The monitoring report's figures as PNG bytes: scores, metadata shares, drift over the
nights, artifact rates by device.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot), as in
pipelines/metrics/plots.py: nothing needs a display or touches matplotlib's global state.
Every figure has a title and axis labels. Each function takes data already prepared by
pipelines/monitoring/report.py and returns the PNG's bytes (no time stamp in them, so the
same data gives the same bytes); the time series are also built as Figures
(drift_figure, qc_figure) so that their axes can be read. Their x axis spans the nights
they are given, first to last, not what autoscaling makes of the points drawn.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 100
# q-values below the floor are drawn at it: one extreme night must not flatten every other
Q_FLOOR = 1e-12
REFERENCE, NIGHT = "#7f7f7f", "#d62728"
LABEL_CHARS = 28
TOP_VALUES = 8  # per metadata column; the rest are summed as "other"
NOT_RECORDED = "not recorded"
HALF_NIGHT = pd.Timedelta(hours=12)
DAILY_TICKS = 7  # up to this many nights, one tick per night; beyond, matplotlib chooses


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


Nights = tuple[pd.Timestamp, pd.Timestamp]


def nights_of(*dates: Iterable[object]) -> Nights | None:
    """(first, last) night among the dates (YYYY-MM-DD strings, dates or timestamps); None
    when there is none. What a time-series plot's x axis spans."""
    found = pd.to_datetime(pd.Series([d for part in dates for d in part], dtype=object),
                           errors="coerce").dropna()
    return (found.min().normalize(), found.max().normalize()) if len(found) else None


def _dates(ax: Axes, nights: Nights) -> None:
    """The x axis spans the first to the last night, half a day either side, whatever the
    points drawn (autoscaling one night gives four years, and no point at all 1970), with
    readable date ticks whether that is one night or ninety: never hours between nights."""
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, DateFormatter, DayLocator

    first, last = nights
    ax.set_xlim(first - HALF_NIGHT, last + HALF_NIGHT)
    locator = DayLocator() if (last - first).days < DAILY_TICKS else AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    # one tick only: the concise formatter would label it with its hour, "00:00"
    formatter = DateFormatter("%Y-%m-%d") if first == last else ConciseDateFormatter(locator)
    ax.xaxis.set_major_formatter(formatter)


def _label(value: object) -> str:
    text = str(value)
    return text if len(text) <= LABEL_CHARS else text[:LABEL_CHARS - 1] + "…"


def score_plot(reference: np.ndarray, night: np.ndarray, operating_point: float) -> bytes:
    """Histograms (density) of the exam scores on [0, 1], night over reference, with the
    operating point as a dashed line; an empty sample is left out of the legend."""
    figure = _figure(6.4, 3.6)
    ax = figure.add_subplot()
    bins = np.linspace(0.0, 1.0, 21).tolist()
    if len(reference):
        ax.hist(reference, bins=bins, density=True, histtype="stepfilled", color=REFERENCE, alpha=0.45,
                label=f"reference ({len(reference)} exams)")
    if len(night):
        ax.hist(night, bins=bins, density=True, histtype="step", color=NIGHT, linewidth=2.0,
                label=f"night ({len(night)} exams)")
    ax.axvline(operating_point, color="black", linestyle="--",
               label=f"operating point {operating_point:.3f}")
    ax.set(xlim=(0.0, 1.0), xlabel="exam score", ylabel="density",
           title="Exam scores: night against reference")
    ax.legend(loc="upper right", fontsize="small")
    return _png(figure)


def shares(reference: pd.DataFrame, night: pd.DataFrame, column: str) -> pd.DataFrame:
    """Share of exams per value of `column` (index) in "reference" and "night" (columns),
    most common first, values past TOP_VALUES summed as "other"; NaN, or the column missing
    from a frame, counts as "not recorded"."""
    def share(frame: pd.DataFrame) -> pd.Series:
        if column not in frame.columns:
            return pd.Series({NOT_RECORDED: 1.0}) if len(frame) else pd.Series(dtype=float)
        return frame[column].astype("string").fillna(NOT_RECORDED).value_counts(normalize=True)

    table = pd.DataFrame({"reference": share(reference), "night": share(night)}).fillna(0.0)
    table = table.loc[table.sum(axis=1).sort_values(ascending=False, kind="stable").index]
    if len(table) > TOP_VALUES:
        other = table.iloc[TOP_VALUES - 1:].sum().to_frame("other").T
        table = pd.concat([table.iloc[:TOP_VALUES - 1], other])
    return table


def shares_plot(reference: pd.DataFrame, night: pd.DataFrame, columns: Sequence[str]) -> bytes | None:
    """One panel per metadata column either frame has: the share of exams per value,
    reference and night side by side; None when neither frame has any of the columns."""
    tables = {c: shares(reference, night, c) for c in columns
              if c in reference.columns or c in night.columns}
    tables = {c: t for c, t in tables.items() if not t.empty}
    if not tables:
        return None
    longest = max(len(table) for table in tables.values())
    figure = _figure(4.4 * len(tables), 1.4 + 0.42 * longest)
    axes = np.asarray(figure.subplots(1, len(tables), squeeze=False)).ravel()
    for ax, (column, table) in zip(axes, tables.items(), strict=True):
        y = np.arange(len(table))
        ax.barh(y - 0.2, table["reference"], height=0.4, color=REFERENCE, label="reference")
        ax.barh(y + 0.2, table["night"], height=0.4, color=NIGHT, label="night")
        ax.set_yticks(y, [_label(v) for v in table.index], fontsize="small")
        ax.invert_yaxis()
        ax.set(xlim=(0.0, 1.0), xlabel="share of exams", ylabel=column, title=column)
    axes[0].legend(loc="lower right", fontsize="small")
    figure.suptitle("Metadata shares: night against reference")
    return _png(figure)


def drift_plot(history: pd.DataFrame, alpha: float, nights: Nights | None = None) -> bytes | None:
    """The PNG of drift_figure; None when there is no figure."""
    figure = drift_figure(history, alpha, nights)
    return None if figure is None else _png(figure)


def drift_figure(history: pd.DataFrame, alpha: float, nights: Nights | None = None) -> Figure | None:
    """-log10 of each family's smallest q-value per night (from history's study_date, family
    and q_value), with the alpha line: points above it are drifted nights. The x axis spans
    `nights` (first, last), by default the history's own. None when the history holds no
    q-value."""
    if not {"study_date", "family", "q_value"} <= set(history.columns):
        return None
    q = history.assign(q_value=pd.to_numeric(history["q_value"], errors="coerce")).dropna(subset=["q_value"])
    if q.empty:
        return None
    smallest_q = q.assign(study_date=pd.to_datetime(q["study_date"])).pivot_table(
        index="study_date", columns="family", values="q_value", aggfunc="min").sort_index()
    figure = _figure(8.0, 3.8)
    ax = figure.add_subplot()
    for family in smallest_q.columns:
        values = np.clip(smallest_q[family].to_numpy(dtype=float), Q_FLOOR, 1.0)
        ax.plot(smallest_q.index, -np.log10(values), "o-", label=str(family))
    ax.axhline(-np.log10(alpha), color="crimson", linestyle="--", label=f"alpha {alpha:g}")
    _dates(ax, nights or _own_nights(history))
    ax.set(xlabel="study date", ylabel="-log10(smallest q-value)", ylim=(0.0, None),
           title=f"Drift per family over the nights (q below {Q_FLOOR:g} drawn at it)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    return figure


def qc_plot(rates: pd.DataFrame, nights: Nights | None = None) -> bytes | None:
    """The PNG of qc_figure; None when there is no figure."""
    figure = qc_figure(rates, nights)
    return None if figure is None else _png(figure)


def qc_figure(rates: pd.DataFrame, nights: Nights | None = None) -> Figure | None:
    """One panel per QC code: the flagged share of views per device over the nights
    (columns study_date, device, code, rate); every panel's x axis spans `nights` (first,
    last), by default the rates' own. None without those columns or rows."""
    if rates.empty or not {"study_date", "device", "code", "rate"} <= set(rates.columns):
        return None
    span = nights or _own_nights(rates)
    codes = sorted(rates["code"].astype(str).unique())
    columns = min(2, len(codes))
    rows = -(-len(codes) // columns)
    figure = _figure(5.2 * columns, 3.2 * rows)
    axes = np.asarray(figure.subplots(rows, columns, squeeze=False)).ravel()
    for ax in axes[len(codes):]:
        ax.set_axis_off()
    for ax, code in zip(axes, codes, strict=False):
        part = rates[rates["code"].astype(str) == code]
        for device, line in part.groupby(part["device"].astype(str), sort=True):
            line = line.assign(study_date=pd.to_datetime(line["study_date"])).sort_values("study_date")
            ax.plot(line["study_date"], pd.to_numeric(line["rate"], errors="coerce"), "o-",
                    label=_label(device))
        _dates(ax, span)
        ax.set(xlabel="study date", ylabel="flagged share of views", ylim=(0.0, None),
               title=f"QC code {code}")
        ax.legend(loc="upper left", fontsize="x-small")
    figure.suptitle("Artifact rates by device")
    return figure


def _own_nights(frame: pd.DataFrame) -> Nights:
    nights = nights_of(frame["study_date"])
    if nights is None:
        raise ValueError(f"no study date to plot over: got {frame['study_date'].head(3).tolist()}")
    return nights
