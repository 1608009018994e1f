"""Deployment sizing from the measured benchmarks: CPU cores and GPU throughput for a night.

Reads benchmarks/results/screening.json (required: CPU-seconds per exam of each screening
stage, the night's fixed CPU outside the stages, seconds per exam of its batch and merge
tasks) and ingest.json (required:
CPU-seconds per full-size exam and exams/s of one `radflow ingest`), and when present
serving.json (Triton on this CPU), gpu.json (Triton on a GPU, clinical input size) and
train.json. For each number of exams a night it prints the CPU cores that ingest and
screen them within the night window with a headroom factor, how long the night's screening
takes at the measured per-process speed (its batches `batch_slots` at a time, then the
merge), and the inference throughput the GPUs must sustain. Nothing is invented: a figure
that was not measured is named as missing, and every assumption is printed under the table.

    python -m benchmarks.sizing [--window-h 5] [--headroom 2] [--exams 25,100,500,2000,10000]
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS

EXAMS_A_NIGHT = (25, 100, 500, 2000, 10000)  # 25: 6,000 a year over ~240 screening days
NOT_STAGES = ("stages", "dag")  # sums in screening.json's cpu_s_per_exam, not stages


@dataclass(frozen=True)
class Measured:
    """Per-exam costs read from the benchmark results (CPU-s are user + system seconds)."""

    ingest_cpu_s: float  # one full-size exam, uncompressed: radflow + Orthanc
    ingest_j2k_cpu_s: float | None  # the same exam stored as JPEG 2000 lossless
    ingest_exams_per_s: float  # one `radflow ingest` run (its worker processes), full size
    ingest_j2k_exams_per_s: float | None  # the same, JPEG 2000 lossless
    screening_cpu_s: dict[str, float]  # "task/stage" -> all processes (radflow, services) per exam
    batch_wall_s: float  # seconds per exam in `score_batch` (the batches one after the other)
    collect_wall_s: float  # of which its collect stage (download, decode, preprocess)
    merge_wall_s: float  # seconds per exam in `merge_screening` (one task a night)
    night_fixed_cpu_s: float  # per night: Airflow and the other tasks, outside the stages
    screening_scale: float  # the screening benchmark's image scale (1 = the full detector)
    gpu_images_per_s: float | None = None  # Triton on a GPU, clinical input size
    cpu_triton_images_per_s: float | None = None  # Triton on this CPU, the demo model
    train_images_per_s: float | None = None  # training on this CPU, the demo model
    source: str = ""


@dataclass(frozen=True)
class Plan:
    """The night window, the headroom factor, the views per exam, and how many batches of a
    night are scored at once (`score_batch` takes a slot of the `pacs` pool:
    RADFLOW_PACS_POOL_SLOTS, default 2, if the workers have that many free slots)."""

    window_h: float = 5.0
    headroom: float = 2.0
    views_per_exam: int = 4
    batch_slots: int = 2

    def __post_init__(self) -> None:
        if self.window_h <= 0 or self.headroom < 1 or self.views_per_exam < 1 or self.batch_slots < 1:
            raise ValueError(f"need window_h > 0, headroom >= 1, views_per_exam >= 1, batch_slots >= 1; "
                             f"got {self}")


@dataclass(frozen=True)
class Row:
    exams: int
    cpu_s: float  # CPU-seconds of the night (uncompressed PACS)
    cores: int  # CPU cores to finish within the window with the headroom
    cores_j2k: int | None  # the same when the PACS sends JPEG 2000 lossless
    night_h: float  # the night's screening: batches batch_slots at a time, then the merge
    night_j2k_h: float | None  # the same when the PACS sends JPEG 2000 lossless
    ingest_run_h: float  # one `radflow ingest` run at the measured speed
    images_per_s: float  # inference throughput needed, headroom included
    gpus: int | None  # from a measured GPU throughput, else None


def per_exam_cpu_s(m: Measured, ingest_cpu_s: float) -> float:
    """CPU-s of one exam in a night: its ingest plus its screening, where screening's collect
    (download, decode, preprocess) at full size counts as one more full-size ingest of the
    exam when the benchmark measured it on smaller images (an overestimate: ingest also
    de-identifies and writes the lake)."""
    collect = sum(v for k, v in m.screening_cpu_s.items() if _is_collect(k))
    if m.screening_scale < 1:
        collect = max(collect, ingest_cpu_s)
    rest = sum(v for k, v in m.screening_cpu_s.items() if not _is_collect(k))
    return ingest_cpu_s + collect + rest


def _is_collect(key: str) -> bool:
    return key.rsplit("/", 1)[-1] == "collect"


def night_hours(exams: int, m: Measured, plan: Plan, ingest_exams_per_s: float) -> float:
    """Hours of a night's screening: its batches `plan.batch_slots` at a time, then the
    merge; a batch's collect at full size taken as fast as one ingest run per exam when the
    benchmark's images were smaller. Airflow's fixed seconds a night are left out."""
    collect = m.collect_wall_s
    if m.screening_scale < 1:
        collect = max(collect, 1 / ingest_exams_per_s)
    batch = m.batch_wall_s - m.collect_wall_s + collect
    return exams * (batch / plan.batch_slots + m.merge_wall_s) / 3600


def cores_for(cpu_s: float, plan: Plan) -> int:
    """Cores that spend cpu_s within the window with the headroom (at least 1)."""
    return max(1, math.ceil(cpu_s * plan.headroom / (plan.window_h * 3600)))


def size(exams: int, m: Measured, plan: Plan) -> Row:
    """The sizing row of one number of exams a night."""
    if exams < 1:
        raise ValueError(f"exams a night must be at least 1, got {exams}")
    window_s = plan.window_h * 3600
    cpu_s = exams * per_exam_cpu_s(m, m.ingest_cpu_s) + m.night_fixed_cpu_s
    cores_j2k = night_j2k_h = None
    if m.ingest_j2k_cpu_s is not None:
        cores_j2k = cores_for(exams * per_exam_cpu_s(m, m.ingest_j2k_cpu_s) + m.night_fixed_cpu_s, plan)
    if m.ingest_j2k_exams_per_s is not None:
        night_j2k_h = night_hours(exams, m, plan, m.ingest_j2k_exams_per_s)
    images_per_s = exams * plan.views_per_exam * plan.headroom / window_s
    gpus = math.ceil(images_per_s / m.gpu_images_per_s) if m.gpu_images_per_s else None
    return Row(exams, cpu_s, cores_for(cpu_s, plan), cores_j2k,
               night_hours(exams, m, plan, m.ingest_exams_per_s), night_j2k_h,
               exams / m.ingest_exams_per_s / 3600, images_per_s, gpus)


def exams_served(images_per_s: float, plan: Plan) -> int:
    """Exams a night that an inference server of that throughput serves within the plan."""
    return int(images_per_s * plan.window_h * 3600 / (plan.views_per_exam * plan.headroom))


def _read(path: Path) -> dict[str, Any] | None:
    return dict(json.loads(path.read_text())) if path.exists() else None


def load(results: Path = RESULTS) -> Measured:
    """The per-exam costs from the result files in `results`.

    Raises:
        FileNotFoundError: screening.json or ingest.json is missing (the command is named).
        ValueError: a result predates the CPU-seconds figures (rerun that benchmark).
    """
    found = {n: _read(results / f"{n}.json") for n in ("screening", "ingest", "serving", "gpu", "train")}
    screening, ingest = found["screening"], found["ingest"]
    for name, data in (("screening", screening), ("ingest", ingest)):
        if data is None:
            raise FileNotFoundError(f"{results / name}.json is missing: run python -m benchmarks.{name}")
        needed = ("cpu_s_per_exam", "wall_s_per_exam") if name == "screening" else ("cpu_s_per_exam",)
        if any(k not in data["secondary"] for k in needed):
            raise ValueError(f"{results / name}.json lacks {' or '.join(needed)}: "
                             f"rerun python -m benchmarks.{name}")
    assert screening is not None and ingest is not None
    sec, walls = screening["secondary"], screening["secondary"]["wall_s_per_exam"]
    stages = {k: float(v) for k, v in sec["cpu_s_per_exam"].items() if k not in NOT_STAGES}
    j2k = ingest["secondary"].get("jpeg2000_lossless")
    serving, gpu, train = found["serving"], found["gpu"], found["train"]
    dated = [f"{n} {d['date'][:10]}" for n, d in found.items() if d is not None]
    return Measured(
        ingest_cpu_s=float(ingest["secondary"]["cpu_s_per_exam"]["total"]),
        ingest_j2k_cpu_s=float(j2k["cpu_s_per_exam"]["total"]) if isinstance(j2k, dict) else None,
        ingest_exams_per_s=float(ingest["secondary"]["exams_per_s"]),
        ingest_j2k_exams_per_s=float(j2k["ingest_exams_s"]) if isinstance(j2k, dict) else None,
        screening_cpu_s=stages,
        batch_wall_s=float(walls["score_batch"]), collect_wall_s=float(walls["score_batch/collect"]),
        merge_wall_s=float(walls["merge_screening"]),
        night_fixed_cpu_s=float(sec["dag_fixed_cpu_s"]),
        screening_scale=float(screening["params"].get("scale", 1.0)),
        gpu_images_per_s=float(gpu["value"]) if gpu else None,
        cpu_triton_images_per_s=float(serving["value"]) if serving else None,
        train_images_per_s=float(train["value"]) if train else None,
        source=f"{screening['machine']}; " + ", ".join(dated))


def _hours(h: float | None, plan: Plan) -> str:
    if h is None:
        return "not measured"
    text = "<1 min" if h * 60 < 1 else f"{h * 60:.0f} min" if h < 1 else f"{h:.1f} h"
    return f"**{text}**" if h > plan.window_h else text


def render(rows: list[Row], m: Measured, plan: Plan) -> str:
    """The sizing table as Markdown, with what it assumes and what was not measured."""
    lines = [f"Night window {plan.window_h:g} h, headroom x{plan.headroom:g}, {plan.views_per_exam} views "
             f"an exam. Measured: {m.source}.", "",
             "| exams a night | CPU-s a night | CPU cores | CPU cores, JPEG 2000 PACS | screening wall-clock "
             "| the same, JPEG 2000 | inference needed | GPUs |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        gpus = str(r.gpus) if r.gpus is not None else "1 if it sustains that"
        j2k = str(r.cores_j2k) if r.cores_j2k is not None else "not measured"
        lines.append(f"| {r.exams:,} | {r.cpu_s:,.0f} | {r.cores} | {j2k} | {_hours(r.night_h, plan)} "
                     f"| {_hours(r.night_j2k_h, plan)} | {r.images_per_s:.2f} images/s "
                     f"({r.images_per_s / plan.views_per_exam:.3f} exams/s) | {gpus} |")
    stages = ", ".join(f"{k} {v:.3f}" for k, v in m.screening_cpu_s.items() if v >= 0.0005)
    lines += ["", f"- CPU-s per exam: ingest {m.ingest_cpu_s:.2f} (full-size exam, uncompressed; "
              + (f"{m.ingest_j2k_cpu_s:.2f} as JPEG 2000 lossless" if m.ingest_j2k_cpu_s is not None
                 else "JPEG 2000 not measured")
              + f") + screening stages ({stages}; the others under 0.001; images at scale "
              f"{m.screening_scale:g}) = "
              f"{per_exam_cpu_s(m, m.ingest_cpu_s):.2f}, plus {m.night_fixed_cpu_s:.0f} CPU-s a night "
              "outside the stages (Airflow, the night's other tasks). Cores are for this work only: "
              "the services' idle load is not in them.",
              "- Ingest runs in `retrain_mammo_model` (weekly by default); its CPU per exam is the same "
              "whenever it runs, and is counted here as if each night's exams were ingested that night."]
    if m.screening_scale < 1:
        lines.append("- Screening's collect (download, decode, preprocess) was measured on smaller "
                     "images: at full size it is counted as one more full-size ingest of the exam, in "
                     "CPU and in time.")
    lines.append(f"- Screening wall-clock: the night's `score_batch` tasks {plan.batch_slots} at a time "
                 f"({m.batch_wall_s:.3f} s an exam measured one after the other), then one `merge_screening` "
                 f"({m.merge_wall_s:.3f} s an exam: SR, CAD SR and heatmaps into the PACS, worklist), at the "
                 "measured per-process speed; in bold when longer than the window. More `pacs` pool slots "
                 "and worker slots shorten the batches, not the merge.")
    if m.gpu_images_per_s is None:
        lines.append("- No GPU was measured: a GPU's Triton throughput on the clinical model is not known "
                     "here. One GPU serves a row's exams if it sustains the \"inference needed\" rate "
                     "(`python -m benchmarks.gpu` on the GPU server measures it).")
    else:
        lines.append(f"- GPU: Triton served {m.gpu_images_per_s:.1f} images/s at the clinical size "
                     f"(gpu.json): {exams_served(m.gpu_images_per_s, plan):,} exams a night per GPU.")
    if m.cpu_triton_images_per_s is not None:
        lines.append(f"- Triton on this CPU (demo model, serving.json): {m.cpu_triton_images_per_s:.0f} "
                     f"images/s, i.e. {exams_served(m.cpu_triton_images_per_s, plan):,} exams a night; its "
                     "CPU is in the screening stages above.")
    if m.train_images_per_s is not None:
        views = 6000 * plan.views_per_exam
        lines.append(f"- Training on this CPU (demo model, train.json): {m.train_images_per_s:.0f} images/s, "
                     f"one epoch over a year of 6,000 exams ({views:,} views) in "
                     f"{views / m.train_images_per_s / 60:.0f} min.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--window-h", type=float, default=5.0, help="the night window, hours")
    parser.add_argument("--headroom", type=float, default=2.0, help="factor over the measured cost")
    parser.add_argument("--batch-slots", type=int, default=2, help="batches scored at once (pacs pool slots)")
    parser.add_argument("--exams", default=",".join(map(str, EXAMS_A_NIGHT)),
                        help="exams a night, comma-separated")
    args = parser.parse_args()
    plan = Plan(window_h=args.window_h, headroom=args.headroom, batch_slots=args.batch_slots)
    m = load()
    print(render([size(int(n), m, plan) for n in args.exams.split(",")], m, plan))


if __name__ == "__main__":
    main()
