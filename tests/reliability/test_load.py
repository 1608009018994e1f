"""Load: a night of exams arriving while screening runs (issue 18, item 8), on the real services.

`radflow synth` C-STOREs a night of RADFLOW_LOAD_EXAMS exams (4 views each, 1/8 of the
detector matrix; `make reliability-load`: 2,000, `make test`: 40) into the gateway Orthanc at
full speed. Once a tenth of them are in, `radflow screen --date NIGHT` screens the night while
the rest keep arriving: it takes what is in (a study still arriving is waited for, then left
out) and leaves the rest. The next night's `radflow screen --date NEXT` then catches the night
up (pipelines/screening/late.py): every study of the night ends with one result, one SR, one
Mammography CAD SR and one heatmap series, and a third run finds nothing left.

Memory: every process of each `radflow` command (the command and any worker it starts) is
sampled every 0.25 s, its peak resident set read from the kernel's high-water mark (VmHWM),
as are the services' (Orthanc, Triton, MLflow). Bounded means the screening that caught up
the whole night peaks within BOUND_MB, and at most GROWTH_MB above the first run's, which
saw a tenth of the exams (the merge holds one batch's arrays at a time). The night is cut
into batches of BATCH exams (40 batches in the full run, 4 in CI), so a process whose memory
grew with the night, not the batch, would show.

The figures go to docs/reliability.md (tests.reliability.figures).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psutil

from tests.integration.models import approve, register_versions
from tests.integration.stack import RADFLOW, Stack
from tests.reliability.figures import record

EXAMS = int(os.environ.get("RADFLOW_LOAD_EXAMS", "40"))
FULL = 2000  # `make reliability-load`
NIGHT, NEXT = "2026-09-07", "2026-09-08"
BATCH = max(10, EXAMS // 40)  # 40 batches in the full run (the default 50), 4 in CI
INPUT = (256, 192)  # the champion's input: a night's arrays are 1.6 MB an exam
BOUND_MB = 1500  # peak resident set of any one radflow process
GROWTH_MB = 300  # the catch-up (the whole night) over the first run (a tenth of it)
SAMPLE_S = 0.25


def stack_settings(folder: Path) -> dict[str, str]:
    """The champion's input size; batches of BATCH exams; a study is complete once Orthanc
    has had no new instance of it for 5 s (the gateway's default is 10 s; the test stacks'
    2 s is short for a loaded machine)."""
    return {"RADFLOW_IMAGE_HEIGHT": str(INPUT[0]), "RADFLOW_IMAGE_WIDTH": str(INPUT[1]),
            "RADFLOW_ORTHANC_STABLE_AGE_S": "5", "RADFLOW_SCREENING_BATCH_EXAMS": str(BATCH)}


def _hwm_mb(proc: psutil.Process) -> float:
    """The process's peak resident set so far (VmHWM), in MB; 0 once it is gone."""
    try:
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0.0


class Peaks:
    """Samples process trees in a thread: per label, the largest peak of any one process
    (VmHWM) and of the tree's resident sets added up, and the most processes at once."""

    def __init__(self) -> None:
        self.roots: dict[str, psutil.Process] = {}
        self.process_mb: Counter[str] = Counter()
        self.tree_mb: Counter[str] = Counter()
        self.processes: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def watch(self, label: str, pid: int) -> None:
        self.roots[label] = psutil.Process(pid)

    def __enter__(self) -> Peaks:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            for label, root in list(self.roots.items()):
                try:
                    tree = [root, *root.children(recursive=True)]
                except psutil.NoSuchProcess:
                    continue
                rss = 0.0
                for proc in tree:
                    self.process_mb[label] = max(self.process_mb[label], _hwm_mb(proc))
                    try:
                        rss += proc.memory_info().rss / 2**20
                    except psutil.NoSuchProcess:
                        pass
                self.tree_mb[label] = max(self.tree_mb[label], rss)
                self.processes[label] = max(self.processes[label], len(tree))


def _services(stack: Stack) -> dict[str, int]:
    """The stack's service processes (their command line names its state folder), by name."""
    found: dict[str, int] = {}
    for proc in psutil.process_iter(["pid", "name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(stack.state) in cmdline:
            for name in ("Orthanc", "tritonserver", "mlflow"):
                if name.lower() in cmdline.lower() and name not in found:
                    found[name] = proc.info["pid"]
    return found


def _spawn(stack: Stack, log: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([RADFLOW, *args, "--json"], env=stack.env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)


def _last_json(log: Path) -> dict[str, Any]:
    lines = [line for line in log.read_text().splitlines() if line.startswith("{")]
    assert lines, log.read_text()[-3000:]
    return dict(json.loads(lines[-1]))


def _studies(stack: Stack, date: str) -> list[str]:
    url, auth = stack.orthanc_api()
    found = httpx.post(f"{url}/tools/find", auth=auth, timeout=120,
                       json={"Level": "Study", "Query": {"StudyDate": date.replace("-", ""),
                                                         "ModalitiesInStudy": "MG"}})
    found.raise_for_status()
    return [str(s) for s in found.json()]


def _radflow_series(stack: Stack, date: str) -> dict[str, Counter[str]]:
    """Per study of the date, radflow's series by kind (SR, CAD-SR, heatmaps)."""
    url, auth = stack.orthanc_api()
    found = httpx.post(f"{url}/tools/find", auth=auth, timeout=300, json={
        "Level": "Series", "Expand": True,
        "Query": {"StudyDate": date.replace("-", ""), "Manufacturer": "radflow"}})
    found.raise_for_status()
    out: dict[str, Counter[str]] = {}
    for series in found.json():
        kind = series["MainDicomTags"].get("SeriesDescription", "").split()[2]
        out.setdefault(series["ParentStudy"], Counter())[kind] += 1
    return out


def test_a_night_arriving_while_it_is_screened_is_caught_up_whole(stack: Stack, tmp_path: Path) -> None:
    started = time.monotonic()
    register_versions(stack, "mammo-screening", [INPUT], tmp_path / "onnx")
    approve(stack, "mammo-screening", 1)
    stack.radflow("deploy")
    services = _services(stack)

    with Peaks() as peaks:
        for name, pid in services.items():
            peaks.watch(name, pid)
        synth = _spawn(stack, tmp_path / "synth.log", "synth", "--exams", str(EXAMS), "--date", NIGHT,
                       "--site", "north", "--seed", "8")
        peaks.watch("synth", synth.pid)
        while len(_studies(stack, NIGHT)) < max(4, EXAMS // 10):
            assert synth.poll() is None, (tmp_path / "synth.log").read_text()[-3000:]
            time.sleep(0.5)
        first_at = time.monotonic()
        first = _spawn(stack, tmp_path / "first.log", "screen", "--date", NIGHT)
        peaks.watch("screen_during_arrival", first.pid)
        assert first.wait(timeout=3600) == 0, (tmp_path / "first.log").read_text()[-3000:]
        first_s = time.monotonic() - first_at
        arrived_by_end_of_first = len(_studies(stack, NIGHT))
        assert synth.wait(timeout=7200) == 0, (tmp_path / "synth.log").read_text()[-3000:]
        synth_s = time.monotonic() - started
        stack.wait_stable(timeout=300)

        catch_up_at = time.monotonic()
        second = _spawn(stack, tmp_path / "next.log", "screen", "--date", NEXT)
        peaks.watch("screen_next_night", second.pid)
        assert second.wait(timeout=7200) == 0, (tmp_path / "next.log").read_text()[-3000:]
        catch_up_s = time.monotonic() - catch_up_at

    during, nxt = _last_json(tmp_path / "first.log"), _last_json(tmp_path / "next.log")
    studies = _studies(stack, NIGHT)
    results = stack.query("SELECT exam_id, count(*) AS n FROM exam_results WHERE study_date = :d "
                          "GROUP BY exam_id", d=NIGHT)
    series = _radflow_series(stack, NIGHT)
    whole = Counter({"SR": 1, "CAD-SR": 1, "heatmaps": 1})
    complete = sum(series.get(s, Counter()) == whole for s in studies)
    third = stack.radflow("screen", "--date", NEXT)
    caught = nxt["caught_up"]
    figures = {
        "exams_pushed": EXAMS, "studies_in_orthanc": len(studies),
        "screened_during_arrival": during["exams"], "quarantined_during_arrival": len(during["quarantined"]),
        "arriving_left_out": during["arriving"], "arrived_by_end_of_first_run": arrived_by_end_of_first,
        "caught_up_nights": len(caught), "caught_up_exams": sum(c["exams"] for c in caught),
        "caught_up_quarantined": sum(len(c["quarantined"]) for c in caught),
        "exams_with_results": len(results), "duplicate_results": sum(r["n"] - 1 for r in results),
        "studies_with_sr_cad_sr_heatmaps": complete,
        "missed": len(studies) - len(results),
        "left_after_catch_up": len(third["caught_up"]),
        "synth_s": round(synth_s, 1), "screen_during_arrival_s": round(first_s, 1),
        "catch_up_run_s": round(catch_up_s, 1),
        "peak_rss_mb": {label: round(mb) for label, mb in sorted(peaks.process_mb.items())},
        "peak_tree_rss_mb": {label: round(mb) for label, mb in sorted(peaks.tree_mb.items())},
        "most_processes": dict(sorted(peaks.processes.items())),
    }
    full = EXAMS >= FULL
    record(8, "load_night_full" if full else "load_night", figures, seconds=time.monotonic() - started,
           run="full" if full else "ci",
           note=f"{EXAMS} synthetic exams (4 views, 1/8 detector matrix) C-STOREd at full speed while "
                f"`radflow screen --date {NIGHT}` ran, then the next night's run caught the night up; "
                f"champion input {INPUT[0]}x{INPUT[1]}, batches of {BATCH} exams; peak RSS = VmHWM "
                f"per process, sampled every {SAMPLE_S} s; bounds {BOUND_MB} MB a process, "
                f"{GROWTH_MB} MB growth")

    assert len(studies) == EXAMS
    assert during["exams"] + len(during["quarantined"]) < EXAMS, "screened after the whole night arrived"
    assert [c["date"] for c in caught] == [NIGHT]
    assert len(caught[0]["quarantined"]) == 0 and caught[0]["exams"] == EXAMS
    assert (len(results), figures["duplicate_results"], complete) == (EXAMS, 0, EXAMS)
    assert third["caught_up"] == []
    screens = ("screen_during_arrival", "screen_next_night")
    assert all(peaks.process_mb[s] < BOUND_MB for s in (*screens, "synth")), figures
    growth = peaks.process_mb["screen_next_night"] - peaks.process_mb["screen_during_arrival"]
    assert growth < GROWTH_MB, figures

