"""Fuzz cases through ingest's per-study path, each in a worker process with a time limit.

A worker runs the two functions `radflow ingest` runs for every study, with only the
download from Orthanc replaced by the case's files: `prepare_files` (read, route, views,
labels, decode, display, burned-in text, preprocess) and `ingest_prepared` (de-identify,
pseudonyms, manifest rows, the lake folder, or the quarantine record with its reason),
against its own SQLite results database and lake. It then scans what passed for the
input's identifiers (`pipelines.deid.original_identifiers`): each view's DICOM JSON header
in the lake and manifest row, which are made from that view's file alone, for the values
of that file; every reason for the values of all files of the study. Then it empties the
manifest, quarantine and lake for the next case.

The parent hands out cases and waits: a worker that does not answer within KILL_S is
killed (the case counted as a hang) and replaced. A case slower than HANG_S is run once
more, right after the clean study it was placed in (the control), and counts as a hang
only if it is slower than HANG_S again and more than HANG_RATIO times its control: on a
machine so loaded that a clean exam takes seconds, slow is not hung.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import logging
import multiprocessing
import os
import re
import shutil
import time
import warnings
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from tests.reliability.fuzz import SYNTH_SITES, Case
from tests.reliability.fuzz_files import Corpus, build, study_files

HANG_S = 5.0
HANG_RATIO = 10.0
KILL_S = 30.0
READY_S = 180.0  # a worker's start: imports, three synthetic exams, the database's migration
SOURCE = "fuzz"
# The reason of an exception no check foresaw (pipelines/ingest/steps.py, UnforeseenInput).
UNFORESEEN = re.compile(r": unexpected \w+ in [\w.<> ]+$")


@dataclasses.dataclass
class Outcome:
    """What ingest made of one case."""

    index: int
    status: str  # "passed", "rejected", "crash" (an exception escaped, or no check foresaw it), "hang"
    seconds: float
    reason: str = ""
    crash: str = ""
    quarantined: bool = False  # the quarantine table holds the rejection with its reason
    phi_check: bool = False  # rejected by de-identification's own check (PhiDetected)
    leaks_in_output: int = 0  # input identifiers found in what passed
    leaks_in_reason: int = 0
    unscanned: int = 0  # views whose own file could not be read for its identifiers
    skipped: tuple[str, ...] = ()
    runs: int = 1
    control_seconds: float = 0.0  # the clean study, just before a second run
    first_seconds: float = 0.0  # the first run's, of a case run twice (else `seconds`)

    @property
    def hung(self) -> bool:
        return self.status == "hang" or (self.runs > 1 and self.seconds > HANG_S
                                         and self.seconds > HANG_RATIO * self.control_seconds)


# ----------------------------------------------------------------------------- in the worker

def _serve(conn: Connection, env: dict[str, str]) -> None:
    from pipelines.processes import die_with_parent

    die_with_parent()
    os.environ.update(env)
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)  # every quarantine logs a warning
    from pipelines import config, db

    config.reset_settings()
    corpus = Corpus()
    for site in SYNTH_SITES:
        corpus.exam(site)
    db.get_engine()  # migrated before the first case is timed
    conn.send("ready")
    while (message := conn.recv()) is not None:
        index, case, runs = message
        control = _control(case, corpus) if runs > 1 else 0.0
        outcome = run_case(index, case, corpus)
        outcome.runs, outcome.control_seconds = runs, control
        conn.send(outcome)


def _control(case: Case, corpus: Corpus) -> float:
    """Seconds to ingest the clean study the case is placed in, now, on this machine."""
    from pipelines.ingest.prepare import prepare_files
    from pipelines.ingest.run import ingest_prepared

    site, _ = case.placed()
    started = time.monotonic()
    ingest_prepared(prepare_files("control", list(corpus.exam(site).items())), 0, SOURCE)
    seconds = time.monotonic() - started
    _clean_up()
    return seconds


def run_case(index: int, case: Case, corpus: Corpus) -> Outcome:
    """Build the case's study, ingest it as `radflow ingest` does one study, and check it."""
    from pipelines.domain import Quarantined
    from pipelines.errors import origin
    from pipelines.ingest.prepare import prepare_files
    from pipelines.ingest.run import ingest_prepared

    blob, skipped = build(case, corpus)
    files = study_files(case, index, blob, corpus)
    study_id = f"{index:08x}-fuzz"
    started = time.monotonic()
    try:
        item = prepare_files(study_id, files)
        result = ingest_prepared(item, index + 1, SOURCE)
    except Exception as exc:  # the ingest run itself would stop here
        _clean_up()
        return Outcome(index, "crash", time.monotonic() - started, skipped=tuple(skipped),
                       crash=f"{type(exc).__name__} escaped ingest from {origin(exc)}")
    seconds = time.monotonic() - started
    inputs = [_file_identifiers(data) for _, data in files]
    everyone = set().union(*(found for _, found in inputs if found is not None))
    outcome = Outcome(index, "passed", seconds, skipped=tuple(skipped))
    if isinstance(result, Quarantined):
        outcome.status, outcome.reason = "rejected", result.reason
        outcome.quarantined = _quarantine_reason(study_id) == result.reason and bool(result.reason.strip())
        outcome.phi_check = "an original identifier survives" in result.reason
        outcome.leaks_in_reason = len(_leaked(everyone, [result.reason.encode()]))
        if item.unforeseen or UNFORESEEN.search(result.reason):
            outcome.status, outcome.crash = "crash", result.reason
    elif item.exam is not None:
        # a view's header and manifest row are made from its own file alone (and from
        # pseudonyms, shifted dates and radflow's own texts): scanned for that file's values
        for view, published in _published(result).items():
            own = _own_identifiers(item.exam.identifiers.get(f"instance:{view}", ""), inputs)
            outcome.unscanned += own is None
            outcome.leaks_in_output += len(_leaked(own if own is not None else everyone, published))
    _clean_up()
    return outcome


def _leaked(identifiers: set[str], blobs: list[bytes]) -> list[str]:
    from tests.integration.stack import leaked

    return leaked(identifiers, blobs)


@functools.lru_cache(maxsize=64)  # the clean files of the synthetic exams come back every case
def _file_identifiers(blob: bytes) -> tuple[str, set[str] | None]:
    """A file's SOPInstanceUID and identifying values (`original_identifiers`, as the tests
    elsewhere list them), or None when it cannot be read for them."""
    import io

    import pydicom

    from pipelines.deid import original_identifiers

    try:
        ds = pydicom.dcmread(io.BytesIO(blob), force=True)
        return str(ds.get("SOPInstanceUID", "") or ""), set(original_identifiers(ds))
    except Exception:
        return "", None


def _own_identifiers(uid: str, inputs: list[tuple[str, set[str] | None]]) -> set[str] | None:
    """The identifiers of the file(s) a view was made from (by SOPInstanceUID), or None
    when that cannot be told or they could not be listed."""
    own = [found for file_uid, found in inputs if uid and file_uid == uid]
    if not own or any(found is None for found in own):
        return None
    return set().union(*(found for found in own if found is not None))


def _strings(value: Any) -> list[str]:
    """Every string (and integer) inside a JSON value: DICOM JSON renders DS values as floats
    ("50" as 50.0), which are no identifier and would match one by accident."""
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, str):
        return [value]
    if isinstance(value, int) and not isinstance(value, bool):
        return [str(value)]
    return []


def _published(exam_id: str) -> dict[str, list[bytes]]:
    """What ingest published of each view of an exam: the strings of its manifest row and
    of its DICOM JSON header in the lake."""
    import sqlalchemy as sa

    from pipelines import db

    with db.get_engine().connect() as conn:
        found = conn.execute(sa.select(db.images).where(db.images.c.exam_id == exam_id))
        rows = [dict(r._mapping) for r in found]
    published: dict[str, list[bytes]] = {}
    for row in rows:
        header = Path(row["image_path"]).with_suffix(".dcm.json")
        strings = _strings({k: str(v) if isinstance(v, str) else v for k, v in row.items()})
        strings += _strings(json.loads(header.read_text())) if header.exists() else ["<no header>"]
        published[row["view"]] = ["\n".join(strings).encode()]
    return published


def _quarantine_reason(study_id: str) -> str | None:
    import sqlalchemy as sa

    from pipelines import db

    with db.get_engine().connect() as conn:
        return conn.execute(sa.select(db.quarantine.c.reason).where(
            db.quarantine.c.stage == "ingest", db.quarantine.c.item_id == study_id)).scalar_one_or_none()


def _clean_up() -> None:
    """An empty manifest, quarantine and lake for the next case (pseudonym keys stay)."""
    from pipelines import db
    from pipelines.config import get_settings

    with db.get_engine().begin() as conn:
        conn.execute(db.images.delete())
        conn.execute(db.quarantine.delete())
    lake = get_settings().lake_dir
    if lake.is_dir():
        for path in lake.iterdir():
            shutil.rmtree(path) if path.is_dir() else path.unlink()


# ----------------------------------------------------------------------------- in the parent

class _Worker:
    def __init__(self, root: Path, number: int) -> None:
        state = root / f"worker-{number}"
        env = {"RADFLOW_STATE_DIR": str(state), "RADFLOW_DATABASE_URL": f"sqlite:///{state / 'radflow.db'}"}
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        # not a daemon: ingest starts decode processes of its own; it dies with us (die_with_parent)
        self.process = ctx.Process(target=_serve, args=(child, env), name=f"radflow-fuzz-{number}")
        self.process.start()
        child.close()
        self.job: tuple[int, Case, float, int] | None = None

    def wait_ready(self) -> None:
        if not self.conn.poll(READY_S) or self.conn.recv() != "ready":
            raise AssertionError(f"fuzz worker {self.process.name} did not start in {READY_S:g} s")

    def send(self, index: int, case: Case, runs: int) -> None:
        self.job = (index, case, time.monotonic(), runs)
        self.conn.send((index, case, runs))

    def stop(self, kill: bool = False) -> None:
        if self.process.is_alive():
            if kill:
                self.process.kill()
            else:
                try:
                    self.conn.send(None)
                except OSError:
                    self.process.kill()
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(10)
        self.conn.close()


def run_cases(cases: list[Case], workers: int, root: Path) -> list[Outcome]:
    """Every case through ingest in `workers` worker processes; outcomes in case order."""
    started = 0
    pool = []
    for _ in range(workers):
        pool.append(_Worker(root, started))
        started += 1
    for worker in pool:
        worker.wait_ready()
    todo: collections.deque[tuple[int, Case, int]] = collections.deque((i, c, 1) for i, c in enumerate(cases))
    done: dict[int, Outcome] = {}
    first: dict[int, float] = {}  # the first run's seconds of a case run twice
    try:
        while todo or any(w.job for w in pool):
            for worker in pool:
                if worker.job is None and todo:
                    worker.send(*todo.popleft())
            busy = [w for w in pool if w.job]
            deadline = min(w.job[2] + KILL_S * w.job[3] for w in busy if w.job)
            ready = wait([w.conn for w in busy], timeout=max(0.0, deadline - time.monotonic()))
            for i, worker in enumerate(pool):
                if worker.job is None:
                    continue
                index, case, sent, runs = worker.job
                if worker.conn in ready:
                    outcome = _answer(worker, index, sent)
                elif time.monotonic() - sent >= KILL_S * runs:  # a second run also runs its control
                    outcome = Outcome(index, "hang", time.monotonic() - sent,
                                      crash=f"no answer in {KILL_S:g} s: the worker was killed")
                    worker.stop(kill=True)
                else:
                    continue
                worker.job = None
                if not worker.process.is_alive():
                    worker.stop()
                    pool[i] = _Worker(root, started)
                    started += 1
                    pool[i].wait_ready()
                outcome.runs = runs
                if outcome.status != "hang" and outcome.seconds > HANG_S and runs == 1:
                    todo.appendleft((index, case, 2))  # slow: once more, to tell a hang from load
                    first[index] = outcome.seconds
                    continue
                outcome.first_seconds = first.get(index, outcome.seconds)
                done[index] = outcome
    finally:
        for worker in pool:
            worker.stop()
    return [done[i] for i in range(len(cases))]


def _answer(worker: _Worker, index: int, sent: float) -> Outcome:
    try:
        answer: Any = worker.conn.recv()
    except (EOFError, OSError):
        worker.process.join(5)
        return Outcome(index, "crash", time.monotonic() - sent,
                       crash=f"the worker process died (exit code {worker.process.exitcode})")
    assert isinstance(answer, Outcome)
    return answer
