"""Ingest survives what happens to real batch jobs: kill -9 mid-batch, two runs at once,
and a full re-ingest from scratch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from tests.integration.stack import RADFLOW, Stack

EXAMS = 40


def _count(stack: Stack) -> tuple[int, int]:
    row = stack.query("SELECT count(*) AS n, count(DISTINCT exam_id) AS e FROM images")[0]
    return int(row["n"]), int(row["e"])


def _lake_exams(stack: Stack) -> int:
    return sum(1 for p in (stack.state / "lake" / "images").glob("study_date=*/*") if p.is_dir())


def test_kill_9_mid_batch_then_rerun_loses_and_duplicates_nothing(stack: Stack) -> None:
    stack.radflow("synth", "--exams", str(EXAMS), "--date", "2026-09-01", "--site", "south",
                  "--seed", "21")
    stack.wait_stable()
    stack.query("SELECT 1")  # schema exists once the first radflow command ran
    proc = subprocess.Popen([RADFLOW, "ingest", "--json"], env=stack.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            rows, _ = _count(stack)
        except Exception:  # the images table does not exist yet
            rows = 0
        if 4 <= rows < 4 * EXAMS - 8:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "ingest finished before it could be killed"
    killed_at, _ = _count(stack)
    assert 0 < killed_at < 4 * EXAMS and killed_at % 4 == 0  # whole exams only

    rerun = stack.radflow("ingest")
    assert rerun["quarantined"] == []
    assert _count(stack) == (4 * EXAMS, EXAMS)
    assert rerun["ingested_exams"] == EXAMS - killed_at // 4
    assert _lake_exams(stack) == EXAMS
    assert not any((stack.state / "lake" / ".staging").iterdir())
    assert stack.radflow("ingest")["new_studies"] == 0


def test_two_concurrent_runs_are_serialized(stack: Stack) -> None:
    stack.radflow("synth", "--exams", "12", "--date", "2026-09-02", "--site", "east", "--seed", "22")
    stack.wait_stable()
    procs = [subprocess.Popen([RADFLOW, "ingest", "--json"], env=stack.env, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True) for _ in range(2)]
    outs = [json.loads(p.communicate(timeout=600)[0].strip().splitlines()[-1]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(o["ingested_exams"] for o in outs) == [0, 12]
    assert _count(stack) == (4 * (EXAMS + 12), EXAMS + 12)


def test_a_full_reingest_gives_identical_pseudonyms(stack: Stack) -> None:
    before = stack.query("SELECT exam_id, view, patient_id, instance_id FROM images ORDER BY 1, 2")
    stack.query("DELETE FROM ingest_state")  # forget the watermark: read /changes from 0
    again = stack.radflow("ingest")
    assert again["new_studies"] == EXAMS + 12 and again["ingested_exams"] == EXAMS + 12
    after = stack.query("SELECT exam_id, view, patient_id, instance_id FROM images ORDER BY 1, 2")
    assert after == before

