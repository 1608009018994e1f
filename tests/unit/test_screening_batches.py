"""A screening night shared by workers: planned into batches, each scored and staged on its
own, merged once every batch is in (pipelines/screening/batches.py, staging.py, merge.py).

The real collection (pixels decoded, preprocessed, image QC), staging, merge, SR building
and worklist run on small synthetic studies held by an in-memory stand-in of the gateway
Orthanc; Triton is a deterministic function of the pixels; deployments are real records in
the results database (SQLite, and a fresh PostgreSQL database).
"""

from __future__ import annotations

import dataclasses
import io
import json
import threading
import time
import weakref
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
import sqlalchemy as sa
from dicom_builders import PATIENT_ID, PATIENT_NAME, screening_exam

from pipelines import config, db, deployments, features
from pipelines.deployments import Deployment
from pipelines.errors import PermanentError
from pipelines.locks import stage_lock
from pipelines.screening import batches, capture, merge, plans, run, staging
from pipelines.screening.writeback import encode

NIGHT = "2026-03-14"
CUTS = json.dumps([round(0.1 * i, 2) for i in range(1, 10)])


class FakeOrthanc:
    """The gateway Orthanc's calls screening makes, over dicts: the night's studies, their
    instances' files, and the store / list / delete calls of the write-back."""

    url = "http://orthanc.test"

    def __init__(self, studies: dict[str, list[pydicom.Dataset]]) -> None:
        self.files = {f"{sid}-i{k}": encode(ds) for sid, dss in studies.items() for k, ds in enumerate(dss)}
        self.studies = {sid: [f"{sid}-i{k}" for k in range(len(dss))] for sid, dss in studies.items()}
        self.uids = {sid: str(dss[0].StudyInstanceUID) for sid, dss in studies.items()}
        self.stored: dict[str, pydicom.Dataset] = {}  # radflow's objects by SOPInstanceUID

    def __enter__(self) -> FakeOrthanc:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def find_studies(self, study_date: str, modality: str = "MG") -> list[str]:
        return list(reversed(self.studies))  # not in id order: the plan orders them

    def study(self, study_id: str) -> dict[str, Any]:
        return {"ID": study_id, "MainDicomTags": {"StudyInstanceUID": self.uids[study_id]}}

    def study_instances(self, study_id: str) -> list[dict[str, Any]]:
        return [{"ID": i} for i in self.studies[study_id]]

    def instance_files(self, ids: list[str], workers: int) -> list[bytes]:
        return [self.files[i] for i in ids]

    def upload(self, blob: bytes) -> dict[str, Any]:
        ds = pydicom.dcmread(io.BytesIO(blob))
        status = "AlreadyStored" if ds.SOPInstanceUID in self.stored else "Success"
        self.stored.setdefault(str(ds.SOPInstanceUID), ds)
        sid = next(s for s, uid in self.uids.items() if uid == ds.StudyInstanceUID)
        return {"Status": status, "ParentStudy": sid}

    def study_series(self, study_id: str) -> list[dict[str, Any]]:
        series: dict[str, dict[str, Any]] = {}
        for uid, ds in self.stored.items():
            if ds.StudyInstanceUID != self.uids[study_id]:
                continue
            s = series.setdefault(str(ds.SeriesInstanceUID), {
                "ID": f"series-{ds.SeriesInstanceUID}", "Instances": [],
                "MainDicomTags": {"SeriesInstanceUID": ds.SeriesInstanceUID, "Manufacturer": ds.Manufacturer,
                                  "SeriesDescription": ds.get("SeriesDescription", "")}})
            s["Instances"].append(uid)
        return list(series.values())

    def series_instances(self, series_id: str) -> list[dict[str, Any]]:
        uid = series_id.removeprefix("series-")
        return [{"ID": k, "MainDicomTags": {"SOPInstanceUID": k}}
                for k, ds in self.stored.items() if ds.SeriesInstanceUID == uid]

    def delete_series(self, series_id: str) -> None:
        uid = series_id.removeprefix("series-")
        self.stored = {k: v for k, v in self.stored.items() if v.SeriesInstanceUID != uid}

    def delete_instance(self, instance_id: str) -> None:
        del self.stored[instance_id]


class FakeTriton:
    """Probability and heatmap as fixed functions of the pixels (plus `shift`)."""

    def __init__(self) -> None:
        self.shift = 0.0
        self.calls = 0

    def infer_outputs(self, model: str, images: np.ndarray, batch_size: int,
                      version: str = "") -> dict[str, np.ndarray]:
        self.calls += 1
        flat = images.reshape(len(images), -1)
        prob = np.clip(flat.mean(axis=1) * 0.8 + flat.std(axis=1) + self.shift, 0.0, 1.0)
        heat = images[:, :, ::4, ::4].astype(np.float32)
        return {"probability": prob.astype(np.float32)[:, None], "heatmap": heat}

    def infer(self, model: str, images: np.ndarray, batch_size: int, version: str = "") -> np.ndarray:
        return 1.0 - self.infer_outputs(model, images, batch_size, version)["probability"].reshape(-1)


def _features(prepared: list[Any], rows: list[Any], images: np.ndarray, onnx: Path) -> Any:
    """capture.night_frame without the ONNX embedding (metadata and image statistics only)."""
    return features.frame([features.exam_row(e.exam_id, [v.header for v in e.views.values()],
                                             [v.image for v in e.views.values()], None, r.score)
                           for e, r in zip(prepared, rows, strict=True)])


@pytest.fixture
def database(results_database: str) -> str:
    """SQLite, then PostgreSQL (tests/conftest.py)."""
    return results_database


@pytest.fixture
def night(database: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Five screenable studies and one missing a view; a champion and a shadow deployed."""
    monkeypatch.setenv("RADFLOW_IMAGE_HEIGHT", "32")
    monkeypatch.setenv("RADFLOW_IMAGE_WIDTH", "24")
    monkeypatch.setenv("RADFLOW_SCREENING_CAPACITY", "2")  # flags rank the whole night
    monkeypatch.setenv("RADFLOW_DOWNLOAD_WORKERS", "1")
    config.reset_settings()
    studies = {}
    for n in range(6):
        exam = screening_exam(40 + 4 * n, 32)
        studies[f"{n:02d}{'f' * 38}"[:40]] = exam[:3] if n == 4 else exam  # study 4 lacks L-MLO
    orthanc, triton = FakeOrthanc(studies), FakeTriton()
    for module in (batches, merge):
        monkeypatch.setattr(module, "OrthancClient", lambda s=None: orthanc)
    monkeypatch.setattr(batches, "TritonClient", lambda s=None: triton)
    monkeypatch.setattr(capture, "model_file", lambda deployed: tmp_path / "model.onnx")
    monkeypatch.setattr(capture, "night_frame", _features)
    common = dict(model_name="mammo-screening", model_version="1", triton_version=1, sha256="ab" * 32,
                  deployed_at="2026-03-01T00:00:00+00:00", suspicion_cuts=CUTS)
    deployments.record(Deployment(triton_model="mammo_screening", operating_point=0.5, **common))
    deployments.record(Deployment(triton_model="mammo_screening_shadow", operating_point=0.4, slot="shadow",
                                  name="mammo-shadow", **common))
    yield {"orthanc": orthanc, "triton": triton, "studies": studies}


def _batch_size(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    monkeypatch.setenv("RADFLOW_SCREENING_BATCH_EXAMS", str(n))
    config.reset_settings()


def _read_batches(plan: plans.Plan) -> list[staging.StagedBatch]:
    """Every batch of the plan as it staged it, arrays included."""
    return [staging.StagedBatch(b.batch, b.exams, *staging.read_arrays(plan, b), b.features, b.shadow,
                                b.stage_seconds) for b in staging.read_staged(plan)]


def _table(name: str, *drop: str) -> list[dict[str, Any]]:
    table = db.metadata.tables[name]
    with db.get_engine().connect() as conn:
        rows = [dict(r) for r in conn.execute(sa.select(table)).mappings()]
    key = [c.name for c in table.primary_key.columns]
    return sorted(({k: v for k, v in r.items() if k not in drop} for r in rows),
                  key=lambda r: [str(r[k]) for k in key])


def _night_state() -> dict[str, Any]:
    s = config.get_settings()
    return {
        "exam_results": _table("exam_results", "screened_at"),
        "view_results": _table("view_results"), "qc_flags": _table("qc_flags"),
        "qc_device_rates": _table("qc_device_rates"),
        "shadow_results": _table("shadow_results", "screened_at"),
        "worklist": json.loads((s.worklists_dir / "mammo" / NIGHT / "worklist.json").read_text()),
        "features": [{k: None if isinstance(v, float) and np.isnan(v) else v for k, v in r.items()}
                     for r in features.read_night("mammo", NIGHT, "1").to_dict("records")],
    }


def test_a_plan_cuts_the_night_into_batches_in_a_stable_order() -> None:
    studies = [(f"ex-{c}", f"orthanc-{c}") for c in "ecadb"]
    plan = plans.make_plan("mammo", NIGHT, "1", 2, studies)
    assert [[p.study_id for p in b] for b in plan.batches()] == [
        ["orthanc-a", "orthanc-b"], ["orthanc-c", "orthanc-d"], ["orthanc-e"]]
    assert [p.position for p in plan.studies] == [0, 1, 2, 3, 4]
    assert plans.make_plan("mammo", NIGHT, "1", 2, list(reversed(studies))) == plan  # same studies, same plan
    assert plans.make_plan("mammo", NIGHT, "1", 3, studies).plan_id != plan.plan_id
    assert plans.make_plan("mammo", NIGHT, "2", 2, studies).plan_id != plan.plan_id
    assert len(plans.make_plan("mammo", NIGHT, "1", 50, studies).batches()) == 1
    assert plans.make_plan("mammo", NIGHT, "1", 2, []).batches() == []
    with pytest.raises(PermanentError, match="has 3 batches, not a batch 3"):
        plan.batch(3)


def test_planning_hands_out_pseudonyms_only(night: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    _batch_size(monkeypatch, 4)
    planned = batches.plan(NIGHT)
    assert (planned.exams, planned.batch_exams, [len(b.exams) for b in planned.batches]) == (6, 4, [4, 2])
    assert [b.batch for b in planned.batches] == [0, 1] and {b.plan_id for b in planned.batches} == {
        planned.plan_id}
    assert all(e.startswith("ex-") for b in planned.batches for e in b.exams)
    text = json.dumps(planned.as_json())  # what XCom carries
    uids = {str(ds.StudyInstanceUID) for dss in night["studies"].values() for ds in dss}
    assert not any(phi in text for phi in (PATIENT_ID, PATIENT_NAME, *uids))
    assert batches.plan(NIGHT).plan_id == planned.plan_id  # the same night planned again


def test_rerunning_one_batch_replaces_only_its_rows(night: dict[str, Any],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _batch_size(monkeypatch, 2)
    planned = batches.plan(NIGHT)
    assert len(planned.batches) == 3
    for b in planned.batches:
        batches.score_batch(b.task, b.date, b.batch, b.plan_id, b.exams)
    before = _table("screening_staged")
    folder = plans.folder("mammo", NIGHT)
    files_before = sorted(p.name for p in folder.iterdir())
    night["triton"].shift = 0.05  # the batch is scored again, differently
    again = planned.batches[1]
    result = batches.score_batch(again.task, again.date, again.batch, again.plan_id, again.exams)
    assert result.batch == 1 and result.exams + len(result.quarantined) == 2
    after = _table("screening_staged")
    assert len(after) == len(before) == 6  # one row per planned study: replaced, not added
    assert [r for r in after if r["batch"] != 1] == [r for r in before if r["batch"] != 1]
    changed = [(a["score"], b["score"]) for a, b in zip(after, before, strict=True)
               if a["batch"] == 1 and a["reason"] is None]
    assert changed and all(new != old for new, old in changed)
    files_after = sorted(p.name for p in folder.iterdir())
    assert [f for f in files_after if not f.startswith("batch-0001")] == [
        f for f in files_before if not f.startswith("batch-0001")]
    assert len([f for f in files_after if f.startswith("batch-0001")]) == 2  # arrays and features
    assert set(files_after) & {f for f in files_before if f.startswith("batch-0001")} == set()


def test_the_merge_refuses_while_a_batch_is_missing_and_names_it(
        night: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    _batch_size(monkeypatch, 2)
    planned = batches.plan(NIGHT)
    for b in (planned.batches[0], planned.batches[2]):
        batches.score_batch(b.task, b.date, b.batch, b.plan_id, b.exams)
    with pytest.raises(PermanentError, match=r"batch\(es\) 1 of 3 .* have no staged results"):
        merge.merge(NIGHT, notify=False)
    assert _table("exam_results") == [] and night["orthanc"].stored == {}
    assert not (config.get_settings().worklists_dir / "mammo" / NIGHT).exists()
    (record,) = _table("screening_runs")
    assert record["status"] == "failed" and "batch(es) 1 of 3" in record["error"]


def test_a_batch_of_a_superseded_plan_is_refused(night: dict[str, Any],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _batch_size(monkeypatch, 2)
    old = batches.plan(NIGHT).batches[0]
    batches.score_batch(old.task, old.date, old.batch, old.plan_id, old.exams)
    _batch_size(monkeypatch, 3)
    new = batches.plan(NIGHT)
    assert new.plan_id != old.plan_id and _table("screening_staged") == []  # the old plan's staging dropped
    with pytest.raises(PermanentError, match="planned again"):
        batches.score_batch(old.task, old.date, old.batch, old.plan_id, old.exams)


def test_the_merged_night_equals_the_one_shot_night(night: dict[str, Any],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _batch_size(monkeypatch, 50)
    one_shot = run.run(NIGHT, notify=False)
    assert one_shot.batches == 1 and (one_shot.exams, len(one_shot.quarantined)) == (5, 1)
    assert "L-MLO" in one_shot.quarantined[0].reason
    assert one_shot.flagged == 2 and one_shot.flag_reason == "reading capacity (top 2)"
    assert one_shot.write_back["stored"] == 5 * 6  # SR, CAD SR and 4 heatmaps per exam
    assert one_shot.shadow is not None and one_shot.shadow.exams == 5
    expected = _night_state()
    pages = sorted(p.name for p in (config.get_settings().worklists_dir / "mammo" / NIGHT).iterdir())

    _batch_size(monkeypatch, 2)  # 3 batches: the top 2 scores may sit in any of them
    planned = batches.plan(NIGHT)
    assert len(planned.batches) == 3
    for b in reversed(planned.batches):  # workers finish in any order
        batches.score_batch(b.task, b.date, b.batch, b.plan_id, b.exams)
    merged = merge.merge(NIGHT, notify=False)

    assert merged.batches == 3
    assert _night_state() == expected
    # the same findings, so the same SR, CAD SR and heatmap UIDs: nothing new, nothing replaced
    assert merged.write_back == {"exams": 5, "stored": 0, "replaced": 0}
    same = ("date", "exams", "flagged", "model_version", "views_scored", "quarantined", "shadow", "task",
            "run_id", "flag_reason", "views_discounted", "not_retrieved")
    assert {k: getattr(merged, k) for k in same} == {k: getattr(one_shot, k) for k in same}
    assert sorted(p.name for p in Path(merged.worklist).parent.iterdir()) == pages
    assert set(merged.stage_seconds) >= {"collect", "score", "aggregate", "store", "write_back", "worklist"}
    (record,) = _table("screening_runs")
    assert record["status"] == "complete" and record["exams"] == 5


def test_the_merge_holds_one_batchs_arrays_and_headers_at_a_time(night: dict[str, Any],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A night's merge loaded every batch's model inputs, heatmaps and DICOM headers at once:
    its memory grew with the night (13 GB for 2,000 exams at 512x416). Now a batch's arrays
    are loaded when the merge comes to it and are gone before the next batch's are read."""
    _batch_size(monkeypatch, 2)
    planned = batches.plan(NIGHT)
    for b in planned.batches:
        batches.score_batch(b.task, b.date, b.batch, b.plan_id, b.exams)
    live: set[tuple[int, str]] = set()  # (batch, array) still referenced
    loads: list[tuple[int, set[tuple[int, str]]]] = []  # (batch loaded, arrays alive then)
    read_arrays, read_instances = staging.read_arrays, merge.studies.read_instances

    def tracked(plan: plans.Plan, batch: staging.StagedRecord) -> tuple[np.ndarray, np.ndarray]:
        loads.append((batch.batch, set(live)))
        arrays = read_arrays(plan, batch)
        for name, a in zip(("images", "heatmaps"), arrays, strict=True):
            while isinstance(a.base, np.ndarray):  # the array owning the memory: views keep it
                a = a.base
            live.add((batch.batch, name))
            weakref.finalize(a, live.discard, (batch.batch, name))
        return arrays

    headers: list[int] = []  # instances per header read

    def counted(client: Any, ids: list[str], *args: Any, **kwargs: Any) -> list[pydicom.Dataset]:
        headers.append(len(ids))
        return read_instances(client, ids, *args, **kwargs)

    monkeypatch.setattr(staging, "read_arrays", tracked)
    monkeypatch.setattr(merge.studies, "read_instances", counted)
    merged = merge.merge(NIGHT, notify=False)
    assert loads == [(0, set()), (1, set()), (2, set())]  # each batch once, none still held
    assert headers == [8, 8, 4]  # 2, 2 and 1 scored exams of 4 views: one batch's headers a call
    assert (merged.exams, merged.views_scored, merged.batches) == (5, 20, 3)
    assert merged.write_back["exams"] == 5
    assert len(list((Path(merged.worklist).parent / "img").iterdir())) == 5 * 4 * 2


def test_an_empty_night_has_no_batch_and_still_gets_its_page(night: dict[str, Any]) -> None:
    night["orthanc"].studies.clear()
    planned = batches.plan(NIGHT)
    assert planned.batches == [] and planned.exams == 0
    merged = merge.merge(NIGHT, notify=False)
    assert (merged.exams, merged.flagged, merged.batches) == (0, 0, 0)
    assert Path(merged.worklist).is_file()


def test_a_completed_nights_staging_is_dropped_when_another_night_is_planned(
        night: dict[str, Any]) -> None:
    run.run(NIGHT, notify=False)
    assert plans.folder("mammo", NIGHT).is_dir() and _table("screening_staged")
    night["orthanc"].studies.clear()
    batches.plan("2026-03-15")
    assert not plans.folder("mammo", NIGHT).exists() and _table("screening_staged") == []
    with pytest.raises(PermanentError, match=r"batch\(es\) 0 of 1"):  # its merge asks for its batch again
        staging.read_staged(plans.load_plan("mammo", NIGHT))


def test_flags_rank_the_whole_night_not_each_batch() -> None:
    exams = [staging.StagedExam(i, f"ex-{i}", f"s{i}", score=s, suspicion=5)
             for i, s in enumerate([0.9, 0.8, 0.1, 0.2, 0.95])]
    dep = Deployment("m", "1", "mammo_screening", 1, 0.5, "", "")
    rows, reason = merge.flag(exams, dep, 2)
    assert [r.flagged for r in rows] == [True, False, False, False, True]
    assert reason == "reading capacity (top 2)"
    rows, reason = merge.flag(exams, dataclasses.replace(dep, operating_point=0.85), None)
    assert [r.flagged for r in rows] == [True, False, False, False, True] and reason == "operating point"


@pytest.mark.parametrize("results_database", ["postgresql"], indirect=True)  # a real row lock
def test_two_attempts_staging_one_batch_at_once_leave_the_files_its_row_names(
        night: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch retried while its first attempt still runs (issue 18, item 6): both attempts
    have written their files when the first commits. Each used to delete every file of the
    batch but its own after committing, so the last row named files that were gone and the
    merge failed."""
    planned = batches.plan(NIGHT)
    b = planned.batches[0]
    batches.score_batch(b.task, b.date, b.batch, b.plan_id, b.exams)
    plan = plans.load_plan("mammo", NIGHT)
    (staged,) = _read_batches(plan)
    both_written = threading.Barrier(2, timeout=60)
    real_write = staging.write_file

    def write_then_wait(path: Path, write: Any, **kw: Any) -> Path:
        out = real_write(path, write, **kw)
        if path.suffix == ".parquet":  # the attempt's last file: now both have theirs
            both_written.wait()
        return out

    monkeypatch.setattr(staging, "write_file", write_then_wait)
    with ThreadPoolExecutor(2) as pool:
        attempts = [pool.submit(staging.write_batch, plan, staged) for _ in range(2)]
        for attempt in attempts:
            attempt.result(timeout=120)
    (again,) = _read_batches(plan)  # the row's files are there
    assert np.array_equal(again.images, staged.images) and again.exams == staged.exams
    assert len(list(plans.folder("mammo", NIGHT).iterdir())) == 2  # only the row's arrays and features


def test_a_second_screening_of_the_task_waits_for_the_first(night: dict[str, Any]) -> None:
    """Two `radflow screen` of a task at once raced on the staged files and the worklist
    folder, and one failed half-way (issue 18, item 6): the second now waits on the task's
    lock, then completes."""
    with ThreadPoolExecutor(1) as pool:
        with stage_lock("screen-mammo"):  # a first run of the task holds it
            second = pool.submit(run.run, NIGHT, notify=False)
            time.sleep(2)
            waited = not second.done()
            untouched = _table("screening_plans") == [] and _table("screening_runs") == []
        result = second.result(timeout=120)
    assert waited and untouched
    assert (result.exams, len(result.quarantined)) == (5, 1)
    (record,) = _table("screening_runs")
    assert record["status"] == "complete"
