"""CPU seconds (user + system) of groups of processes over a run, sampled from Linux /proc.

A group is either a session (a process started in its own session, and every process it
starts that stays in that session: Triton's Python-backend stubs, a worker pool) or the
PostgreSQL backends whose process title names one of some databases. A group's reading at a moment is
the sum, over its live processes, of their own CPU and the CPU of the children they have
reaped, so a worker that exits and is reaped keeps counting. A process that leaves the group
at exit without being reaped inside it (a PostgreSQL backend that disconnects: the
postmaster reaps it) takes its last interval with it: such a group is a lower bound.

Readings are turned into a non-decreasing series (a drop counts as no CPU), and the CPU of a
window is read off it by linear interpolation between samples.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Group:
    """Processes counted together: a session id, or PostgreSQL backends of some databases."""

    name: str
    session: int | None = None
    databases: tuple[str, ...] = ()  # backends titled "postgres: [cluster:] <user> <database> ..."

    def __post_init__(self) -> None:
        if (self.session is None) == (not self.databases):
            raise ValueError(f"group {self.name!r}: give exactly one of session and databases")


def _title_database(pid: str) -> str | None:
    """The database a PostgreSQL backend serves (its process title), or None."""
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").split()
    except OSError:
        return None
    if not words or words[0] != b"postgres:":
        return None
    if len(words) > 1 and words[1].endswith(b":"):  # "postgres: 15/main: user db ..." (cluster_name)
        words = words[1:]
    return words[2].decode(errors="replace") if len(words) > 2 else None


def read(groups: list[Group]) -> dict[str, float]:
    """CPU seconds of each group now (see the module docstring for what a group counts)."""
    totals = dict.fromkeys((g.name for g in groups), 0.0)
    by_session = {g.session: g.name for g in groups if g.session is not None}
    by_database = {d: g.name for g in groups for d in g.databases}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            head, rest = Path(entry.path, "stat").read_text().rsplit(")", 1)
        except (OSError, ValueError):
            continue  # the process exited while being read
        fields = rest.split()
        ticks = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
        name = by_session.get(int(fields[3]))
        if name is None and by_database and head.endswith("(postgres"):
            name = by_database.get(_title_database(entry.name) or "")
        if name is not None:
            totals[name] += ticks / TICKS
    return totals


@dataclass
class Sampler:
    """Background sampling of `read(groups)` every `interval_s` seconds of wall-clock time."""

    groups: list[Group]
    interval_s: float = 0.1
    times: list[float] = field(default_factory=list)  # time.time() of each sample
    readings: list[dict[str, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _sample(self) -> None:
        self.readings.append(read(self.groups))
        self.times.append(time.time())

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> Sampler:
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="cpu-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()

    def series(self, name: str) -> list[float]:
        """Non-decreasing CPU seconds of group `name` at each sample, from 0 at the first."""
        out, total = [0.0], 0.0
        for before, after in zip(self.readings, self.readings[1:], strict=False):
            total += max(0.0, after[name] - before[name])
            out.append(total)
        return out

    def between(self, name: str, start: float, end: float) -> float:
        """CPU seconds of group `name` from wall-clock time `start` to `end` (time.time()).

        Raises:
            ValueError: end before start, or the window is outside the sampled period.
        """
        if end < start:
            raise ValueError(f"window ends ({end:.3f}) before it starts ({start:.3f})")
        slack = self.interval_s
        if not self.times or start < self.times[0] - slack or end > self.times[-1] + slack:
            raise ValueError(f"window {start:.3f}-{end:.3f} is outside the sampled period")
        cumulative = self.series(name)
        return _at(self.times, cumulative, end) - _at(self.times, cumulative, start)

    def total(self, name: str) -> float:
        """CPU seconds of group `name` over the whole sampled period."""
        return self.series(name)[-1]


def _at(times: list[float], values: list[float], t: float) -> float:
    """values interpolated linearly at time t (clamped to the first and last sample)."""
    i = bisect.bisect_left(times, t)
    if i == 0:
        return values[0]
    if i == len(times):
        return values[-1]
    t0, t1 = times[i - 1], times[i]
    share = (t - t0) / (t1 - t0) if t1 > t0 else 1.0
    return values[i - 1] + share * (values[i] - values[i - 1])
