"""Which series in a study are radflow's results: named by Manufacturer and SeriesDescription.

Screening writes them into the gateway, delivery forwards them to the hospital PACS,
retention and ingest must tell them from the originals.
"""

from __future__ import annotations

from pipelines.pacs.policy import RADFLOW_MANUFACTURER  # ingest skips objects by it


def series_description(task: str, kind: str, model_name: str, model_version: str) -> str:
    """"radflow <task> <kind> <model> v<version>", cut to the 64 characters of LO.

    The first two words identify radflow's objects of a task in a study (see `is_ours`).
    """
    return f"{RADFLOW_MANUFACTURER} {task} {kind} {model_name} v{model_version}"[:64]


def is_ours(manufacturer: str, description: str, task: str) -> bool:
    """Whether a series (by its Manufacturer and SeriesDescription) is radflow's for `task`."""
    words = description.split()
    return manufacturer == RADFLOW_MANUFACTURER and len(words) >= 2 \
        and words[0] == RADFLOW_MANUFACTURER and words[1] == task
