"""`radflow synth`: generate a batch of synthetic screening exams, store them, write the truth.

One exam is generated, written and sent at a time, so memory stays flat whatever the batch
size. The truth file (labels and BI-RADS per study) is staged and published by one rename
when the whole batch is done; a rerun with the same arguments produces the same UIDs and
bytes, so Orthanc and the files end up unchanged.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.config import get_settings
from pipelines.domain import SynthResult
from pipelines.publish import write_file
from pipelines.synth.generate import SynthExam, check_site, iter_exams, normalize_date
from pipelines.synth.prefetch import prefetched
from pipelines.synth.push import OrthancStoreClient

if TYPE_CHECKING:
    from pydicom import Dataset

logger = logging.getLogger(__name__)

TRUTH_COLUMNS: tuple[str, ...] = (
    "study_instance_uid",
    "exam_index",
    "label",
    "lesion_side",
    "birads_r",
    "birads_l",
    "manufacturer",
    "n_images",
    "burned_in_text",
    "artifacts",
    "vendor",
    "detector_degradation",
)
PROGRESS_EVERY = 25


def run(
    exams: int,
    study_date: str,
    site: str,
    seed: int,
    *,
    push: bool = True,
    out_dir: Path | None = None,
    positive_rate: float = 0.3,
    scale: float = 0.125,
    patients: int | None = None,
    progress: bool = True,
    burned_in_text_rate: float = 0.0,
    artifact_rate: float = 0.0,
    vendor: str | None = None,
    detector_degradation: float = 0.0,
) -> SynthResult:
    """Generate `exams` synthetic screening exams of one site and date.

    Args:
        exams: number of exams (each 4 MG views + 1 Basic Text SR report).
        study_date: "YYYY-MM-DD" (or "YYYYMMDD").
        site: site name; "general", "north", "east", "south" map to fixed vendors.
        seed: with site and date, fixes every byte and UID of the batch.
        push: C-STORE every instance to Orthanc (settings: orthanc_dicom_host/port,
            orthanc_aet, calling_aet) over one association.
        out_dir: also write `<out_dir>/<exam:05d>/<view or "report">.dcm`.
        positive_rate: probability that an exam holds a suspicious mass.
        scale: fraction of the detector matrix (0.125 gives 512x416 for Hologic).
        patients: size of the patient pool (default: one per exam); exam i belongs to
            patient i % patients, and the pool is the same on every study date.
        progress: print progress lines (counts and rate, never PHI) to stderr.
        burned_in_text_rate: probability that one view of an exam has the patient's name,
            MRN and birth date burned into its pixels; the truth CSV names the view.
        artifact_rate: probability that one view of an exam has an image artifact (foreign
            object, motion blur, grid lines, clipped exposure, missing pectoral muscle);
            the truth CSV's `artifacts` column names it as "R-MLO:motion_blur".
        vendor: image with another vendor's unit ("hologic", "ge", "siemens", "fujifilm";
            default: the site's own); the population stays the site's. A drift drill's
            "vendor change"; the truth CSV's `vendor` column names the unit used.
        detector_degradation: 0 to 1, an ageing detector on the same unit (more noise,
            less contrast, a fixed gain non-uniformity); the truth CSV records it.

    Returns:
        Counts, the site and ISO date, and the path of the truth CSV
        `<state>/synth/truth-<site>-<date>-seed<seed>.csv`.

    Raises:
        OrthancUnavailable: push is on and no association can be opened (or it keeps
            dropping).
        PermanentError: an argument is invalid or Orthanc refused an instance.
    """
    iso_date, site = normalize_date(study_date), check_site(site)
    settings = get_settings()
    truth_path = settings.state / "synth" / f"truth-{site}-{iso_date}-seed{seed}.csv"
    meter = ProgressMeter(exams, enabled=progress)
    rows: list[dict[str, object]] = []
    positives = 0
    batch = iter_exams(
        exams, iso_date, site, seed, positive_rate=positive_rate, scale=scale, patients=patients,
        burned_in_text_rate=burned_in_text_rate, artifact_rate=artifact_rate,
        vendor=vendor, detector_degradation=detector_degradation,
    )
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(OrthancStoreClient.from_settings(settings)) if push else None
        ready = stack.enter_context(contextlib.closing(prefetched(_written(batch, out_dir))))
        for exam in ready:
            if client is not None:
                for instance in exam.instances:
                    client.store(instance.dataset, exam.plan.index)
            rows.append(truth_row(exam))
            positives += int(exam.plan.positive)
            meter.update(len(exam.instances))
    meter.finish()
    write_truth(truth_path, rows)
    logger.info("synth %s %s: %d exams, %d positives", site, iso_date, exams, positives)
    return SynthResult(
        exams=exams,
        instances=meter.instances,
        positives=positives,
        site=site,
        study_date=iso_date,
        stored=client.stored if client is not None else 0,
        truth_file=str(truth_path),
    )


def _written(batch: Iterator[SynthExam], out_dir: Path | None) -> Iterator[SynthExam]:
    """Pass exams through, writing their files first when `out_dir` is set."""
    for exam in batch:
        if out_dir is not None:
            for instance in exam.instances:
                write_instance(out_dir, exam.plan.index, instance.name, instance.dataset)
        yield exam


def truth_row(exam: SynthExam) -> dict[str, object]:
    """The truth CSV row of an exam."""
    plan = exam.plan
    return {
        "study_instance_uid": exam.study_instance_uid,
        "exam_index": plan.index,
        "label": int(plan.positive),
        "lesion_side": plan.lesion_side,
        "birads_r": plan.birads["R"],
        "birads_l": plan.birads["L"],
        "manufacturer": exam.profile.manufacturer,
        "n_images": sum(1 for i in exam.instances if i.name != "report"),
        "burned_in_text": " ".join(plan.burned_in_text),
        "artifacts": " ".join(f"{view}:{code}" for view, code in plan.artifacts),
        "vendor": exam.profile.key,
        "detector_degradation": exam.profile.detector_degradation,
    }


def write_truth(path: Path, rows: list[dict[str, object]]) -> None:
    """Write the truth CSV to a staging file and publish it with one rename."""
    def write(staging: Path) -> None:
        with staging.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(TRUTH_COLUMNS))
            writer.writeheader()
            writer.writerows(rows)

    write_file(path, write)


def write_instance(out_dir: Path, exam_index: int, name: str, dataset: Dataset) -> Path:
    """Save one instance as `<out_dir>/<exam_index:05d>/<name>.dcm` (staged, then renamed)."""
    path = Path(out_dir) / f"{exam_index:05d}" / f"{name}.dcm"
    return write_file(path, lambda staging: dataset.save_as(staging, enforce_file_format=True))


class ProgressMeter:
    """Prints `synth: 50/200 exams, 250 instances, 38.1 instances/s` lines to stderr."""

    def __init__(self, total: int, *, enabled: bool = True, every: int = PROGRESS_EVERY) -> None:
        self.total, self.enabled, self.every = total, enabled, every
        self.exams = self.instances = 0
        self._start = time.perf_counter()

    def update(self, instances: int) -> None:
        """Count one finished exam with its instances; print every `every` exams."""
        self.exams += 1
        self.instances += instances
        if self.exams % self.every == 0 and self.exams < self.total:
            self._print()

    def finish(self) -> None:
        """Print the final line."""
        self._print()

    @property
    def rate(self) -> float:
        """Instances per second since the meter started."""
        return self.instances / max(time.perf_counter() - self._start, 1e-9)

    def _print(self) -> None:
        if self.enabled:
            print(
                f"synth: {self.exams}/{self.total} exams, {self.instances} instances, "
                f"{self.rate:.1f} instances/s",
                file=sys.stderr,
                flush=True,
            )
