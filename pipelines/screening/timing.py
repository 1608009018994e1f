"""Wall-clock seconds per named stage of a screening night, as `stage_seconds` reports them."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping

log = logging.getLogger(__name__)


class StageTimer:
    """Wall-clock seconds per named stage, logged as each one ends ("screen: stage X took S s":
    benchmarks/screening.py reads these lines)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        yield
        self.seconds[name] = round(self.seconds.get(name, 0.0) + time.monotonic() - started, 3)
        log.info("screen: stage %s took %.2f s", name, time.monotonic() - started)


def summed(*parts: Mapping[str, float]) -> dict[str, float]:
    """Stage seconds of several runs (the batches and the merge), added per stage."""
    out: dict[str, float] = {}
    for part in parts:
        for name, seconds in part.items():
            out[name] = round(out.get(name, 0.0) + float(seconds), 3)
    return out
