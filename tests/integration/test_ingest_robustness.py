"""Ingest survives what happens to real batch jobs: kill -9 mid-batch, two runs at once,
and a full re-ingest from scratch."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

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



def test_burned_in_text_is_quarantined_then_masked_when_the_policy_says_so(
        stack: Stack, tmp_path: Path) -> None:
    previous = stack.query("SELECT watermark FROM ingest_state")[0]["watermark"]
    synth = stack.radflow("synth", "--exams", "10", "--date", "2026-09-03", "--site", "north",
                          "--seed", "23", "--burned-in-text-rate", "0.5")
    with open(synth["truth_file"], newline="") as handle:
        truth = {row["study_instance_uid"]: row["burned_in_text"] for row in csv.DictReader(handle)}
    with_text = {uid for uid, views in truth.items() if views}
    assert 2 <= len(with_text) <= 8
    stack.wait_stable()

    out = stack.radflow("ingest")
    reasons = [q["reason"] for q in out["quarantined"]]
    assert len(reasons) == len(with_text)
    assert all("burned-in text detected in the pixels" in r for r in reasons), reasons
    ingested = {r["original"] for r in stack.query(
        "SELECT original FROM pseudonyms WHERE kind = 'study' AND original = ANY(:u)",
        u=list(truth))}
    assert ingested == set(truth) - with_text
    assert not [r for r in reasons if any(uid in r for uid in truth)]  # no identifiers in reasons

    # The hospital chooses masking: rerun the same batch, the held exams come in, recorded.
    stack.query("UPDATE ingest_state SET watermark = :w", w=previous)
    masked = Stack(env={**stack.env, "RADFLOW_BURNED_IN_TEXT": "mask"}, state=stack.state,
                   db_url=stack.db_url).radflow("ingest")
    assert masked["quarantined"] == []
    assert stack.query("SELECT count(*) AS n FROM quarantine WHERE reason LIKE '%burned-in%'")[0]["n"] == 0
    cleaned = []
    for header in (stack.state / "lake" / "images").glob("study_date=*/*/*.dcm.json"):
        codes = [i["00080100"]["Value"][0] for i in json.loads(header.read_text())["00120064"]["Value"]]
        if "113101" in codes:
            cleaned.append(header)
    assert len(cleaned) == len(with_text)  # one view per exam carried the text
