"""A build-dataset killed mid-build (issue 18, `kill -9` trials) leaves nothing that is read as
a dataset version it is not: its staging folders (a partial copy, or the replaced version
between the swap's two renames) are removed by the next build of that dataset, and files
swapped in before the build recorded their version are refused by `frozen.load` instead of
being labelled with the previous version. A published 12-exam dataset, DVC for real."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from pipelines import db, frozen
from pipelines.datasets import dvc
from pipelines.datasets import run as build
from pipelines.datasets.run import DatasetResult
from pipelines.errors import NoTrainingData
from pipelines.layout import dataset_dir, datasets_root
from tests.unit.test_datasets_evaluate import built  # noqa: F401  (the fixture)


class Killed(BaseException):
    """The process died here."""


def _plant(root: Path, name: str) -> Path:
    folder = root / name
    (folder / "images" / "e1").mkdir(parents=True)
    (folder / "images" / "e1" / "R-CC.npy").write_bytes(b"half-written")
    return folder


def test_the_next_build_removes_what_a_killed_build_left(built: DatasetResult) -> None:  # noqa: F811
    root = datasets_root()
    killed = [_plant(root, f"{build.staging_prefix('mammo')}0badf00d"),  # killed while staging
              _plant(root, f"{build.staging_prefix('mammo')}old-0badf00d"),  # between the renames
              _plant(root, ".staging-0a1b2c3d")]  # a killed build of an older radflow
    other = _plant(root, f"{build.staging_prefix('cxr-nodule')}12345678")  # another dataset's build
    again = build.run()
    assert not any(p.exists() for p in killed)
    assert other.exists()
    assert again.version == built.version == frozen.load("mammo").version  # same data, same version
    assert sorted(p.name for p in root.iterdir() if p.name.startswith(".staging-")) == [other.name]


def test_files_a_killed_build_swapped_in_are_never_read_as_the_previous_version(
        built: DatasetResult, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    images = db.images
    with db.get_engine().begin() as conn:  # a corrected report withdraws one exam's label
        exam = conn.execute(sa.select(images.c.exam_id).order_by(images.c.exam_id)).scalars().first()
        conn.execute(sa.update(images).where(images.c.exam_id == exam).values(label=None))

    def die(*args: object) -> None:
        raise Killed

    with monkeypatch.context() as dying:  # after the swap and `dvc add`, before the record
        dying.setattr(dvc, "push", die)
        with pytest.raises(Killed):
            build.run()
    assert exam not in set(pd.read_parquet(dataset_dir("mammo") / "manifest.parquet").exam_id)
    with pytest.raises(NoTrainingData, match="not those of its recorded version"):
        frozen.load("mammo")  # before the fix: the new files, labelled with the old version

    again = build.run()
    loaded = frozen.load("mammo")
    assert loaded.version == again.version != built.version
    assert exam not in {e for split in loaded.splits.values() for e in split.exam_id}
