"""One night of screening through Airflow: exams per minute, stage times, Airflow overhead.

Setup (not timed): a throwaway stack (Orthanc, MLflow, Triton) and a PostgreSQL results
database, N synthetic exams (4 views each, 1/8 of the detector matrix: about 512x416)
stored in Orthanc for one study date, a registered classifier deployed to Triton, and
Airflow's metadata database migrated.

Measured: `airflow dags test screen_daily_mammograms` for that night, end to end (Orthanc
to results, SR and secondary captures in the PACS, worklist), wall-clock. The night is
planned, scored in batches of RADFLOW_SCREENING_BATCH_EXAMS (`score_batch`, mapped; `dags
test` runs them one after the other) and merged (`merge_screening`); the run records its
stage seconds, summed over the batches and the merge, in `screening_runs`; what the DAG run
takes beyond them is Airflow's overhead (process and DAG parsing, task scheduling, XCom,
the other tasks).

value = exams per minute through Airflow; limit = exams per minute of the stages alone
(the same run's stage seconds), so ratio = 1 - Airflow overhead share. Target: overhead at
most 10%, i.e. ratio >= 0.9. On this machine the 2 cores are shared by Orthanc, Triton,
the screening process and Airflow.

CPU seconds (user + system) per exam, sampled from /proc every 0.1 s during the DAG run
(benchmarks/cpu.py) and cut at the boundaries the run logs (each task's "[DAG TEST]
starting"/"end task" lines, each stage's "screen: stage X took S s"): `radflow` is the DAG
run's own process session (`airflow dags test` running the tasks in-process, and any
process it starts), the services are Orthanc, Triton (with its Python-backend stubs) and
MLflow, each its own session started by `radflow stack up`, and `postgres` the backends of
the run's two databases (results, Airflow metadata; a lower bound: a backend that
disconnects takes its last 0.1 s with it). Secondary figures, per exam of the night:
`cpu_s_per_exam` = {"task/stage": all processes} plus `stages` (their sum) and `dag` (the
whole run); `cpu_s_per_exam_by_task` = {task: all processes} (a mapped task's instances
added); `cpu_s_per_exam_by_process` = {key: {process: CPU-s}} for all of these;
`wall_s_per_exam` = {"task/stage" or task: seconds}; `dag_fixed_cpu_s` is what the run took
outside the stages, a per-night cost. `python -m benchmarks.sizing` reads them.

    python -m benchmarks.screening [--quick] [--exams N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import RADFLOW, write_result
from benchmarks.cpu import Group, Sampler

NIGHT = "2026-10-20"
SERVICES = ("orthanc", "triton", "mlflow")
SUMS = ("stages", "dag")  # keys of the per-exam figures that add others up
STAGE_LINE = re.compile(r"screen: stage (\w+) took ([0-9.]+) s")
TASK_LINE = re.compile(r"\[DAG TEST\] (starting|end task) task_id=(\S+) map_index=(-?\d+)")
TIMESTAMP = re.compile(r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2}(?:[.,]\d+)?)\s*(Z|[+-]\d{2}:?\d{2})?")


def _radflow(env: dict[str, str], *args: str, timeout: float = 7200) -> dict:
    proc = subprocess.run([RADFLOW, *args, "--json"], env=env, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise SystemExit(f"radflow {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _setup(env: dict[str, str], state: Path, db_url: str, exams: int) -> None:
    from tests.integration.models import register_versions
    from tests.integration.stack import Stack

    stack = Stack(env=env, state=state, db_url=db_url)
    started = time.monotonic()
    for first in range(0, exams, 250):  # synth prints progress lines with counts and rate
        n = min(250, exams - first)
        _radflow(env, "synth", "--exams", str(n), "--date", NIGHT, "--site", "north",
                 "--seed", str(1000 + first))
        print(f"setup: {first + n}/{exams} exams stored ({(first + n) / (time.monotonic() - started):.1f}"
              " exams/s)", flush=True)
    stack.wait_stable(timeout=600)
    from pipelines.tracking import credentials

    with credentials("admin", stack.secret("mlflow", "RADFLOW_MLFLOW_ADMIN_PASSWORD")):
        register_versions(stack, "mammo-screening", [(128, 96)], state / "models")
    _radflow(stack.login_env("admin"), "promote", "--version", "1", "--reason", "benchmark champion")
    _radflow(env, "deploy", "--model-uri", "models:/mammo-screening/1")


@dataclass(frozen=True)
class DagRun:
    """The timed `airflow dags test` of the night: wall-clock window, its log, CPU samples."""

    seconds: float
    log: str
    cpu: Sampler


def _cpu_groups(state: Path, db_url: str, runner_pid: int) -> list[Group]:
    """The DAG run's own session, each service's session (pid files of `radflow stack up`)
    and the PostgreSQL backends of the results and Airflow metadata databases."""
    from sqlalchemy.engine import make_url

    groups = [Group("radflow", session=runner_pid)]
    for name in SERVICES:
        pid = int((state / "run" / f"{name}.pid").read_text().strip())
        groups.append(Group(name, session=os.getsid(pid)))
    database = str(make_url(db_url).database)
    return [*groups, Group("postgres", databases=(database, f"{database}_airflow"))]


def _airflow_run(env: dict[str, str], state: Path, db_url: str) -> DagRun:
    """`airflow dags test` of the night (metadata DB migrated beforehand, not timed), in its
    own session, with the CPU of it and of the services sampled throughout."""
    code = ("import json, sys\nfrom pipelines.orchestration import runner\nrunner.ensure_metadata_db()\n"
            "t = runner.dags_test('screen_daily_mammograms', sys.argv[1], {'study_date': sys.argv[2]})\n"
            "print(json.dumps(t))")
    logical = (dt.date.fromisoformat(NIGHT) + dt.timedelta(days=1)).isoformat()
    subprocess.run([str(Path(RADFLOW).parent / "python"), "-c",
                    "from pipelines.orchestration import runner; runner.ensure_metadata_db()"],
                   env=env, check=True, timeout=900)
    started = time.monotonic()
    proc = subprocess.Popen([str(Path(RADFLOW).parent / "python"), "-c", code, logical, NIGHT], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    with Sampler(_cpu_groups(state, db_url, proc.pid)) as cpu:
        stdout, stderr = proc.communicate(timeout=7200)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"the screening DAG failed:\n{stderr[-3000:]}")
    log = Path(json.loads(stdout.strip().splitlines()[-1])["log"])
    text = log.read_text(errors="replace")
    if not re.search(r"Marking run .* successful", text) or "merge_screening" not in text:
        raise SystemExit(f"the screening DAG did not run:\n{text[-3000:]}")
    return DagRun(seconds, text, cpu)


@dataclass(frozen=True)
class Window:
    """A stretch of the DAG run: a task instance (stage None) or a stage inside a task."""

    task: str
    stage: str | None
    start: float  # time.time()
    end: float

    @property
    def key(self) -> str:
        return self.task if self.stage is None else f"{self.task}/{self.stage}"


def _timestamp(line: str) -> float:
    """time.time() of a log line's ISO timestamp (UTC unless it names its offset).

    Raises:
        ValueError: the line has no timestamp (the log format changed).
    """
    stamp = TIMESTAMP.search(line)
    if not stamp:
        raise ValueError(f"no timestamp on the line {line[:200]!r}")
    day, clock, zone = stamp.groups()
    zone = {None: "+00:00", "Z": "+00:00"}.get(zone, zone)
    return dt.datetime.fromisoformat(f"{day}T{clock.replace(',', '.')}{zone}").timestamp()


def log_windows(log: str) -> list[Window]:
    """Every task instance and every stage of the run, from its log: a task from its
    "[DAG TEST] starting" line to its "end task" line, a stage ending at its "screen: stage
    X took S s" line (in the task started last: `dags test` runs one task at a time)."""
    windows: list[Window] = []
    opened: dict[tuple[str, str], float] = {}
    current = ""
    for line in log.splitlines():
        task, stage = TASK_LINE.search(line), STAGE_LINE.search(line)
        if task:
            kind, task_id, index = task.groups()
            if kind == "starting":
                opened[(task_id, index)], current = _timestamp(line), task_id
            elif (task_id, index) in opened:
                windows.append(Window(task_id, None, opened.pop((task_id, index)), _timestamp(line)))
        elif stage:
            end = _timestamp(line)
            windows.append(Window(current, stage.group(1), end - float(stage.group(2)), end))
    return windows


def per_exam(run: DagRun, exams: int) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """({key: {process group: CPU-s}}, {key: wall seconds}) per exam, where a key is a task,
    a "task/stage", `stages` (the stages' sum) or `dag` (the whole run); the instances of a
    mapped task (and a stage run in each) are added."""
    names = [g.name for g in run.cpu.groups]
    cpu: dict[str, dict[str, float]] = {}
    wall: dict[str, float] = {}
    for w in log_windows(run.log):
        got = cpu.setdefault(w.key, dict.fromkeys(names, 0.0))
        for n in names:
            got[n] += run.cpu.between(n, w.start, w.end) / exams
        wall[w.key] = wall.get(w.key, 0.0) + (w.end - w.start) / exams
    stages = [k for k in cpu if "/" in k]
    cpu["stages"] = {n: sum(cpu[k][n] for k in stages) for n in names}
    cpu["dag"] = {n: run.cpu.total(n) / exams for n in names}
    return cpu, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="40 exams (under 2 minutes of screening)")
    parser.add_argument("--exams", type=int, default=1000)
    args = parser.parse_args()
    exams = 40 if args.quick else args.exams

    import sqlalchemy as sa

    from tests.integration.stack import stack_env
    from tests.postgres import postgres_database

    with tempfile.TemporaryDirectory(prefix="radflow-bench-") as tmp, postgres_database() as db_url:
        state = Path(tmp)
        env = stack_env(state, db_url)
        env["RADFLOW_TRITON_THREADS"] = env.get("RADFLOW_TRITON_THREADS", "2")
        _radflow(env, "stack", "up", "--only", "orthanc,mlflow,triton", timeout=600)
        try:
            _setup(env, state, db_url, exams)
            print(f"screening {exams} exams through Airflow...", flush=True)
            dag = _airflow_run({**env, **{k: v for k, v in os.environ.items() if k.startswith("AIRFLOW")}},
                               state, db_url)
            eng = sa.create_engine(db_url)
            with eng.connect() as conn:
                run = conn.execute(sa.text("SELECT * FROM screening_runs WHERE study_date = :d"),
                                   {"d": NIGHT}).mappings().one()
            eng.dispose()
        finally:
            subprocess.run([RADFLOW, "stack", "down", "--json"], env=env, capture_output=True, timeout=300)
    stages = {k: float(v) for k, v in dict(run["stage_seconds"]).items()}
    stage_total = sum(stages.values())
    screened = int(run["exams"])
    wall = dag.seconds
    cpu, walls = per_exam(dag, screened)
    total = {k: round(sum(v.values()), 4) for k, v in cpu.items()}
    per_min, limit = 60 * screened / wall, 60 * screened / stage_total
    overhead = max(0.0, (wall - stage_total) / wall)
    write_result(
        "screening", "exams/min", per_min, limit,
        "exams/min of the same run's screening stages alone (Orthanc to results, PACS write-back, "
        "worklist), without Airflow", 0.9,
        {"exams": exams, "views": 4 * exams, "scale": 0.125, "model_input": [128, 96],
         "status": run["status"], "batch_exams": int(env.get("RADFLOW_SCREENING_BATCH_EXAMS", "50"))},
        {"exams_per_min": round(per_min, 2), "airflow_overhead_share": round(overhead, 4),
         "dag_wall_s": round(wall, 1), "stage_total_s": round(stage_total, 1),
         **{f"{k}_s": round(v, 2) for k, v in stages.items()},
         "cpu_s_per_exam": {k: v for k, v in total.items() if "/" in k or k in SUMS},
         "cpu_s_per_exam_by_task": {k: v for k, v in total.items() if "/" not in k and k not in SUMS},
         "cpu_s_per_exam_by_process": {k: {n: round(c, 4) for n, c in v.items()} for k, v in cpu.items()},
         "wall_s_per_exam": {k: round(v, 4) for k, v in walls.items()},
         "dag_fixed_cpu_s": round(screened * (total["dag"] - total["stages"]), 1),
         "dag_cpu_share_of_machine": round(screened * total["dag"] / (wall * (os.cpu_count() or 1)), 3)})


if __name__ == "__main__":
    main()
