"""Synthetic model inputs of a public site: labelled views a base model is pretrained on."""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from pipelines.config import get_settings
from pipelines.imaging.preprocess import preprocess
from pipelines.synth.generate import iter_exams

log = logging.getLogger(__name__)
PUBLIC_DATE = "2025-06-02"


def synthetic_views(exams: int, site: str, seed: int, *, positive_rate: float = 0.5,
                    study_date: str = PUBLIC_DATE) -> tuple[pd.DataFrame, np.ndarray]:
    """View rows and model inputs [N, 1, H, W] of `exams` synthetic exams (one patient each).

    A view is positive when its breast holds the suspicious mass (the synth truth).
    """
    s = get_settings()
    rows, images, started = [], [], time.monotonic()
    for n, exam in enumerate(iter_exams(exams, study_date, site, seed,
                                        positive_rate=positive_rate), 1):
        plan = exam.plan
        for instance in exam.instances:
            if instance.name == "report":
                continue
            side, position = instance.name.split("-")
            images.append(preprocess(instance.dataset, side, s.image_height, s.image_width))
            rows.append({"exam_id": f"{site}-{seed}-{plan.index:05d}",
                         "patient_id": f"{site}-{seed}-{plan.index:05d}", "view": instance.name,
                         "laterality": side, "view_position": position,
                         "label": int(plan.lesion_side == side),
                         "manufacturer": exam.profile.manufacturer,
                         "density": plan.patient.density.upper()})
        if n % 50 == 0 or n == exams:
            log.info("synth: %d/%d synthetic exams prepared for pretraining (%.1f exams/s)", n, exams,
                     n / max(time.monotonic() - started, 1e-6))
    return pd.DataFrame(rows), np.stack(images)[:, None].astype(np.float32)
