"""Run a generator one step ahead in a background thread (generate while C-STORE waits).

Sending an instance is mostly waiting for Orthanc, and numpy releases the GIL, so drawing
the next exam while the current one is in flight overlaps the two. Items still arrive in
order, and errors raised by the generator surface in the consumer.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterable
from typing import TypeVar, cast

T = TypeVar("T")

_ITEM, _DONE, _ERROR = "item", "done", "error"


def prefetched(items: Iterable[T], depth: int = 2) -> Generator[T, None, None]:
    """Yield from `items`, produced up to `depth` items ahead by a worker thread.

    Close the returned generator (or exhaust it) to stop the worker; use
    `contextlib.closing` when the consumer may raise.

    Args:
        items: the source; it is iterated in the worker thread only.
        depth: how many items may wait ready (bounds memory).

    Yields:
        The items of `items`, in order.

    Raises:
        Exception: whatever the source raised, re-raised in the consumer.
    """
    slots: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=max(depth, 1))
    stop = threading.Event()

    def put(entry: tuple[str, object]) -> bool:
        while not stop.is_set():
            try:
                slots.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((_ITEM, item)):
                    return
            put((_DONE, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            put((_ERROR, exc))

    worker = threading.Thread(target=produce, name="synth-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            kind, payload = slots.get()
            if kind == _DONE:
                return
            if kind == _ERROR:
                assert isinstance(payload, BaseException)
                raise payload
            yield cast(T, payload)
    finally:
        stop.set()
        worker.join()
