"""Stand-in RIS endpoints, each its own process: the MLLP listener of the unit tests
(tests/unit/ris_listener.py) and a FHIR receiver that keeps the DiagnosticReports PUT to
it by identifier (an update replaces, as a FHIR server's conditional update does)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

LISTENER = Path(__file__).resolve().parents[1] / "unit" / "ris_listener.py"
RECEIVER = Path(__file__).resolve().with_name("fhir_receiver.py")


@dataclass
class Endpoint:
    port: int
    received: Path  # one JSON document per line, in arrival order

    def messages(self) -> list[object]:
        if not self.received.exists():
            return []
        return [json.loads(line) for line in self.received.read_text().splitlines() if line.strip()]


@contextmanager
def _process(argv: list[str]) -> Iterator[int]:
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("PORT "), f"the endpoint did not start: {line!r}"
        yield int(line.split()[1])
    finally:
        process.terminate()
        process.wait(30)


@contextmanager
def mllp_listener(folder: Path) -> Iterator[Endpoint]:
    """An MLLP listener answering AA to every message."""
    received = folder / "mllp.jsonl"
    with _process([sys.executable, str(LISTENER), str(received), "AA"]) as port:
        yield Endpoint(port, received)


@contextmanager
def fhir_receiver(folder: Path) -> Iterator[Endpoint]:
    """A FHIR receiver for conditional updates of DiagnosticReport."""
    received = folder / "fhir.jsonl"
    with _process([sys.executable, str(RECEIVER), str(received)]) as port:
        yield Endpoint(port, received)
