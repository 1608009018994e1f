"""Synthetic screening mammography as real DICOM (4 MG views + a BI-RADS SR per exam).

`run()` is the stage's one entry point (CLI `radflow synth`, Airflow, DVC); `iter_exams()`
yields the same exams lazily without storing them. pydicom and pynetdicom load only when
exams are generated or pushed; numpy and scipy load with the package.
"""

from __future__ import annotations

from pipelines.synth.generate import SynthExam, SynthInstance, iter_exams
from pipelines.synth.run import run

__all__ = ["SynthExam", "SynthInstance", "iter_exams", "run"]
