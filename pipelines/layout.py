"""Where the lake's exams, the datasets and the reviewed Triton templates live.

`<state>/datasets` is a DVC repository, one folder per dataset.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.config import PROJECT_DIR, get_settings

SPLITS: tuple[str, ...] = ("train", "val", "test")
MANIFEST = "manifest.parquet"
IMAGES = "images"
# Columns of a dataset manifest: the ingest manifest without the lake bookkeeping
# (absolute image_path, ingest_seq) that would make identical data hash differently,
# plus what the dataset adds.
DROPPED = ("image_path", "ingest_seq")
ADDED = ("pixel_std", "image_file", "split")

# The reviewed Triton model repository (config.pbtxt and model.py adapters) deploy copies from.
TRITON_TEMPLATES = PROJECT_DIR / "serving" / "triton_repo"
# The one Python-backend adapter every task's classifier versions run (ONNX in; probability
# and heatmap out): deploy copies it into each version folder, integrity compares with it.
CLASSIFIER_ADAPTER = TRITON_TEMPLATES / "mammo_screening" / "model.py"


def exam_dir(lake: Path, study_date: str, exam_id: str) -> Path:
    """The lake folder of one exam: its views and de-identified headers."""
    return lake / "images" / f"study_date={study_date}" / exam_id


def datasets_root() -> Path:
    """The DVC repository of every dataset."""
    return get_settings().store / "datasets"


def dataset_dir(name: str) -> Path:
    """The published folder of dataset `name` (manifest.parquet + images/)."""
    return datasets_root() / name


def version_file(name: str) -> Path:
    """The JSON summary of the published version (the DVC stage's output)."""
    return datasets_root() / f"{name}.version.json"


def default_remote() -> Path:
    return get_settings().store / "dvc-remote"
