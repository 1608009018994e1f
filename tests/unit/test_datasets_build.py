"""`radflow build-dataset` for real: SQLite manifest, arrays on disk, DVC run as a process
in a temp state dir (local remote, no network). The DVC hash is the dataset version."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines import cli, db
from pipelines.config import get_settings, reset_settings
from pipelines.datasets import dvc
from pipelines.datasets import run as build
from pipelines.errors import DataContractViolation
from pipelines.layout import dataset_dir, default_remote, version_file
from tests.contracts.test_manifest_contract import good_manifest

VERSION = re.compile(r"^[0-9a-f]{32}\.dir$")


def ingest(exams: int, first: int = 0, seed: int = 0, positive_every: int = 3) -> pd.DataFrame:
    """Write `exams` exams (one patient each) to the manifest table and their arrays to the lake."""
    frame = good_manifest(exams + first).iloc[4 * first:].reset_index(drop=True)
    exam_no = frame.exam_id.str[3:7].map(lambda h: int(h, 16))
    frame["label"] = [int(e % positive_every == 0 and v == "L-CC")
                      for e, v in zip(exam_no, frame.view, strict=True)]
    rng = np.random.default_rng(seed)
    paths = []
    for row in frame.itertuples():
        path = get_settings().lake_dir / "images" / row.exam_id / f"{row.view}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, rng.uniform(0.0, 0.6, (32, 24)).astype(np.float16))
        paths.append(str(path))
    frame["image_path"] = paths
    with db.get_engine().begin() as conn:
        db.upsert(conn, db.images, frame.to_dict("records"), ["exam_id", "view"])
    return frame


def test_a_build_publishes_a_dvc_tracked_version(isolated_settings: Path) -> None:
    ingest(24)
    out = build.run()
    assert VERSION.match(out.version)
    assert out.version == dvc.tracked_hash(Path(out.dvc_file))  # what `dvc add` recorded
    assert (out.exams, out.views, out.patients, out.new_patients, out.moved_patients) == (24, 96, 24, 24, 0)
    assert sum(out.split_exams.values()) == 24 and min(out.split_positive_exams.values()) >= 1
    manifest = pd.read_parquet(out.manifest)
    assert {"split", "image_file", "pixel_std"} <= set(manifest.columns)
    # the breast density of each view comes along for evaluation by density (null: not stated)
    ingested = good_manifest(24).set_index(["exam_id", "view"]).density
    frozen_density = manifest.set_index(["exam_id", "view"]).density
    assert frozen_density.isna().any() and frozen_density.equals(ingested.loc[frozen_density.index])
    assert out.contract == "mammo_dataset.v2"
    assert not {"image_path", "ingest_seq"} & set(manifest.columns)  # no host paths: portable hash
    assert all((dataset_dir("mammo") / f).is_file() for f in manifest.image_file)
    assert manifest.groupby("patient_id").split.nunique().max() == 1
    # pushed to the local default remote: every array and the manifest
    assert out.remote == str(default_remote())
    assert len([p for p in Path(out.remote).rglob("*") if p.is_file()]) >= 96 + 1
    assert json.loads(version_file("mammo").read_text())["version"] == out.version
    assert Path(str(out.data_docs)).is_file()


def test_the_version_is_stable_for_identical_content_and_changes_with_it(
    isolated_settings: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest(12)
    first = build.run()
    again = build.run()
    assert again.version == first.version and again.new_patients == again.moved_patients == 0

    # one view's pixels change -> a new version; restoring them -> the old version again
    target = dataset_dir("mammo").parent.parent / "lake" / "images" / "ex-0003a1b2" / "L-MLO.npy"
    original = np.load(target)
    changed = original.copy()
    changed[0, 0] = np.float16(0.5) if changed[0, 0] != np.float16(0.5) else np.float16(0.25)
    np.save(target, changed)
    pixel_changed = build.run()
    assert pixel_changed.version != first.version
    np.save(target, original)
    assert build.run().version == first.version

    # a label change is a content change too
    with db.get_engine().begin() as conn:
        conn.execute(db.images.update().where(db.images.c.exam_id == "ex-0001a1b2").values(label=1))
    assert build.run().version not in {first.version, pixel_changed.version}

    # the same content built in another state folder gets the same version
    monkeypatch.setenv("RADFLOW_STATE_DIR", str(tmp_path / "elsewhere"))
    reset_settings()
    db.engine_for.cache_clear()
    ingest(12)
    assert build.run().version == first.version


def test_new_patients_do_not_move_old_patients_between_splits(isolated_settings: Path) -> None:
    ingest(20)
    first = build.run()
    old = pd.read_parquet(first.manifest).groupby("patient_id").split.first()
    ingest(10, first=20, seed=1)
    second = build.run()
    new = pd.read_parquet(second.manifest).groupby("patient_id").split.first()
    assert (second.new_patients, second.moved_patients, second.patients) == (10, 0, 30)
    assert new[old.index].equals(old)
    assert second.version != first.version


def test_a_dataset_that_breaks_its_contract_is_not_published(isolated_settings: Path) -> None:
    ingest(12, positive_every=1000)  # only exam 0 is positive: two splits without positives
    with pytest.raises(DataContractViolation) as caught:
        build.run()
    assert "expect_column_values_to_be_between on positive_exams per split: 2 offending rows" in str(
        caught.value)
    root = dataset_dir("mammo").parent
    assert not dataset_dir("mammo").exists() and not (root / "mammo.dvc").exists()
    assert not [p for p in root.iterdir() if p.name.startswith(".staging")]


def test_cli_build_dataset_then_validate_the_frozen_dataset(
    isolated_settings: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ingest(12)
    assert cli.main(["build-dataset", "--json"]) == 0
    built = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert VERSION.match(built["version"]) and built["split_exams"]["test"] >= 1
    assert cli.main(["validate", "--suite", "mammo_dataset", "--json"]) == 0
    checked = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert checked["suite"] == "mammo_dataset.v2" and checked["success"] is True
    assert checked["frame_rows"] == {"rows": 48, "exams": 12, "patients": 12, "splits": 3}
    assert checked["data_docs"].endswith("data_docs/index.html") and Path(checked["data_docs"]).is_file()
    assert cli.main(["validate", "--contract-version", "1", "--no-data-docs", "--json"]) == 0
    pinned = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert pinned["suite"] == "mammo_manifest.v1" and pinned["data_docs"] is None
