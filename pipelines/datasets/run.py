"""`radflow build-dataset`: freeze the validated manifest into a DVC-versioned dataset.

The dataset is `<state>/datasets/<name>/`: `manifest.parquet` (one row per labelled view
of a complete exam, with its patient-level split and the array file it references) and
`images/<exam>/<view>.npy`, copies of the preprocessed arrays. It is checked against its
contract before it is published (one rename), then `dvc add`-ed and pushed to the remote.
The DVC hash of the folder is the dataset version every training run is tagged with.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from pipelines import db
from pipelines.config import get_settings
from pipelines.contracts.enforce import enforce
from pipelines.contracts.suites import contract_path, load_contract
from pipelines.datasets import dvc
from pipelines.datasets.splits import assign_splits, patient_strata
from pipelines.domain import StageResult
from pipelines.errors import NoTrainingData
from pipelines.imaging.storage import from_lake
from pipelines.layout import (
    DROPPED,
    IMAGES,
    MANIFEST,
    SPLITS,
    dataset_dir,
    datasets_root,
    default_remote,
    version_file,
)
from pipelines.locks import stage_lock
from pipelines.params import DatasetParams, load_dataset_params
from pipelines.publish import publish_dir, write_text
from pipelines.tasks import get_task

log = logging.getLogger(__name__)
# What builds of datasets before named staging folders by dataset left (`.staging-<token>`,
# `.staging-old-<token>`): no build stages under such a name any more, so any is a leftover.
_UNNAMED_STAGING = re.compile(r"\.staging-(old-)?[0-9a-f]{8}")


def staging_prefix(name: str) -> str:
    """How a build of dataset `name` names its staging folder beside the datasets (and the
    replaced version on its way out): `.staging-<name>.<token>`, `.staging-<name>.old-<token>`
    (`.dvcignore` leaves them out of every dataset)."""
    return f".staging-{name}."


def clear_staging(root: Path, name: str) -> int:
    """Remove what an interrupted build of dataset `name` left in `root` (a partial copy, or
    the replaced version), and unnamed leftovers of older builds; returns how many. Call it
    with the build's lock held: the staging folders of other datasets' builds stay."""
    leftovers = [p for p in root.glob(".staging-*") if p.is_dir() and (
        p.name.startswith(staging_prefix(name)) or _UNNAMED_STAGING.fullmatch(p.name))]
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    return len(leftovers)


@dataclasses.dataclass(frozen=True)
class DatasetResult(StageResult):
    """A published dataset version; `version` is its DVC hash (`<md5>.dir`)."""

    name: str
    version: str
    path: str
    manifest: str
    dvc_file: str
    remote: str
    contract: str
    data_docs: str | None
    exams: int
    views: int
    patients: int
    new_patients: int
    moved_patients: int
    left_out_exams: int
    split_exams: dict[str, int]
    split_positive_exams: dict[str, int]
    manifest_sha256: str  # of the published manifest.parquet: frozen.load checks the files against it


def load_labelled_manifest(modality: str = "MG") -> tuple[pd.DataFrame, int]:
    """Views of `modality` of exams whose views all carry a label; and how many exams were left out."""
    with db.get_engine().connect() as conn:
        frame = pd.read_sql(sa.select(db.images).where(db.images.c.modality == modality), conn)
    pathology = get_settings().pathology_file
    if pathology is not None and not frame.empty:  # pathology outcomes override BI-RADS labels
        from pipelines.labels.pathology import read_pathology, relabel_rows

        records = frame.astype(object).where(frame.notna(), None).to_dict("records")
        frame = pd.DataFrame(relabel_rows(records, read_pathology(pathology)))
    labelled = frame.groupby("exam_id").label.transform(lambda s: s.notna().all())
    kept = frame[labelled.astype(bool)]
    return kept.sort_values(["exam_id", "view"]).reset_index(drop=True), int(
        frame.exam_id.nunique() - kept.exam_id.nunique())


def previous_splits(folder: Path) -> dict[str, str]:
    """patient -> split of the published version, if there is one."""
    path = folder / MANIFEST
    if not path.exists():
        return {}
    old = pd.read_parquet(path, columns=["patient_id", "split"]).drop_duplicates()
    return dict(zip(old.patient_id, old.split, strict=True))


def stage_dataset(frame: pd.DataFrame, splits: dict[str, str], staging: Path) -> pd.DataFrame:
    """Copy the arrays into `staging/images`, write `staging/manifest.parquet`; the manifest."""
    rows = frame.copy()
    rows["image_file"] = [f"{IMAGES}/{e}/{v}.npy" for e, v in zip(rows.exam_id, rows.view, strict=True)]
    stds = []
    for source, target in zip(rows.image_path, rows.image_file, strict=True):
        (staging / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, staging / target)
        stds.append(float(from_lake(np.load(staging / target)).std()))
    rows["pixel_std"] = stds
    rows["split"] = rows.patient_id.map(splits)
    rows["label"] = rows.label.astype("int64")
    columns = [c for c in frame.columns if c not in DROPPED] + ["pixel_std", "image_file", "split"]
    out = rows[columns].reset_index(drop=True)
    out.to_parquet(staging / MANIFEST, index=False)
    return out


def run(params: DatasetParams | None = None, task: str = "mammo", **overrides: Any) -> DatasetResult:
    """Build, check, publish and version the dataset of `task` (pipelines/tasks.yaml: its
    modality's rows of the manifest, its dataset name and contract); returns its DVC hash
    and counts.

    Raises:
        PermanentError: no such task.
        NoTrainingData: the manifest holds no fully labelled exam.
        DataContractViolation: the staged dataset breaks its contract (nothing published).
    """
    params = params or load_dataset_params(**overrides)
    definition = get_task(task)
    name = definition.dataset
    root, remote = datasets_root(), params.remote or str(default_remote())
    with stage_lock(f"build_dataset-{name}"):
        if root.is_dir() and (cleared := clear_staging(root, name)):
            log.warning("build_dataset: removed %d staging leftovers of an interrupted build of %s",
                        cleared, name)
        frame, left_out = load_labelled_manifest(definition.modality)
        if frame.empty:
            raise NoTrainingData(f"the manifest has no fully labelled {definition.modality} exam of task "
                                 f"{task}: run `radflow ingest` first")
        dvc.ensure_repo(root, remote)
        final = dataset_dir(name)
        before = previous_splits(final)
        splits = assign_splits(patient_strata(frame), before, params.fractions, params.seed)
        # staged as <root>/.staging-<name>.<token>, which .dvcignore leaves out; swapped in
        # only when the contract holds, so a violation publishes nothing
        with publish_dir(final, prefix=staging_prefix(name)) as staging:
            manifest = stage_dataset(frame, splits, staging)
            contract = load_contract(contract_path(definition.dataset_contract))
            report = enforce(manifest, contract)
            digest = hashlib.sha256((staging / MANIFEST).read_bytes()).hexdigest()
        version = dvc.add(root, name)
        dvc.push(root, name)
        result = _result(name, manifest, splits, before, version, remote, report.suite,
                         report.data_docs, left_out, digest)
        # last, and under the lock: until this file names the new version (and its manifest's
        # hash), frozen.load refuses the new files rather than label them with the old version
        write_text(version_file(name), json.dumps(result.as_json(), indent=2, default=str))
    log.info("build_dataset: %s version %s, %d exams (%s)", name, version, result.exams,
             result.split_exams)
    return result


def _result(name: str, manifest: pd.DataFrame, splits: dict[str, str],
            before: dict[str, str], version: str, remote: str, contract: str,
            data_docs: str | None, left_out: int, manifest_sha256: str) -> DatasetResult:
    exams = manifest.groupby(["split", "exam_id"]).label.max().reset_index()
    folder = dataset_dir(name)
    return DatasetResult(
        name=name, version=version, path=str(folder), manifest=str(folder / MANIFEST),
        dvc_file=str(folder.with_name(f"{name}.dvc")), remote=remote, contract=contract,
        data_docs=data_docs, exams=int(manifest.exam_id.nunique()), views=len(manifest),
        patients=len(splits), new_patients=sum(p not in before for p in splits),
        moved_patients=sum(p in before and before[p] != s for p, s in splits.items()),
        left_out_exams=left_out,
        split_exams={s: int((exams.split == s).sum()) for s in SPLITS},
        split_positive_exams={s: int(exams[exams.split == s].label.sum()) for s in SPLITS},
        manifest_sha256=manifest_sha256,
    )
