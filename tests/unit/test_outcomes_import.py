"""`radflow labels import` on SQLite and PostgreSQL: outcomes per exam pseudonym and breast,
a re-import adds nothing, the outcome that ranks highest is kept, bad rows are rejected with
a reason that names the row and column and never the value, accession numbers are resolved
to pseudonyms and never stored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from pipelines import cli, db
from pipelines.errors import LabelFileInvalid, OrthancUnavailable
from pipelines.outcomes.imports import import_follow_up, import_pathology
from tests.unit.outcome_builders import follow_up_text, screen, simulate
from tests.unit.test_monitoring_run import database  # noqa: F401  (the SQLite/PostgreSQL fixture)

pytestmark = pytest.mark.usefixtures("database")


def _exams() -> list[Any]:
    exams = simulate(n=6, seed=3)
    screen(exams)
    return exams


def _stored() -> dict[tuple[str, str], dict[str, Any]]:
    with db.get_engine().connect() as conn:
        rows = conn.execute(sa.select(db.outcomes)).mappings().all()
    return {(r["exam_id"], r["side"]): {k: r[k] for k in ("source", "malignant", "birads", "outcome_date")}
            for r in rows}


def _csv(path: Path, header: str, *rows: str) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def test_pathology_is_stored_per_breast_and_a_reimport_adds_nothing(tmp_path: Path) -> None:
    a, b = _exams()[:2]
    path = _csv(tmp_path / "p.csv", "exam_id,laterality,outcome,date",
                f"{a.exam_id},B,benign,2026-06-01", f"{b.exam_id},L,malignant,2026-06-02")
    first = import_pathology(path)
    assert (first.rows, first.outcomes, first.inserted, first.updated, first.unchanged) == (2, 3, 3, 0, 0)
    stored = _stored()
    assert stored[(a.exam_id, "R")] == {"source": "pathology", "malignant": False, "birads": None,
                                        "outcome_date": "2026-06-01"}
    assert stored[(b.exam_id, "L")]["malignant"] is True and (b.exam_id, "R") not in stored

    again = import_pathology(path)
    assert (again.inserted, again.updated, again.unchanged, again.rejected) == (0, 0, 3, [])
    assert _stored() == stored


def test_pathology_outranks_follow_up_and_a_later_follow_up_replaces_an_earlier_one(tmp_path: Path) -> None:
    a, b = _exams()[:2]
    ris = _csv(tmp_path / "ris.csv", "study_instance_uid,report_date,report_text",
               f'{a.uid},2026-07-01,"{follow_up_text(3)}"', f'{b.uid},2026-07-01,"{follow_up_text(4)}"')
    assert import_follow_up(ris).inserted == 4
    path = _csv(tmp_path / "p.csv", "exam_id,laterality,outcome,date", f"{b.exam_id},R,benign,2026-06-15")
    assert import_pathology(path).updated == 1  # pathology wins, though dated before the report
    later = _csv(tmp_path / "later.csv", "study_instance_uid,report_date,report_text",
                 f'{a.uid},2027-01-10,"{follow_up_text(2)}"', f'{b.uid},2027-01-10,"{follow_up_text(1)}"')
    out = import_follow_up(later)
    assert (out.inserted, out.updated, out.unchanged) == (0, 3, 1)  # b's pathology breast stays
    stored = _stored()
    assert [stored[(a.exam_id, s)]["birads"] for s in "RL"] == [2, 2]
    assert stored[(b.exam_id, "R")]["source"] == "pathology" and stored[(b.exam_id, "L")]["birads"] == 1
    older = import_follow_up(ris)  # the older export again: nothing moves back
    assert (older.inserted, older.updated, older.unchanged) == (0, 0, 4)
    malignant = _csv(tmp_path / "m.csv", "exam_id,laterality,outcome,date",
                     f"{b.exam_id},R,malignant,2026-06-01")
    assert import_pathology(malignant).updated == 1  # malignant outranks benign, whatever the date
    assert _stored()[(b.exam_id, "R")]["malignant"] is True


def test_bad_pathology_rows_are_rejected_by_row_and_column_without_their_values(tmp_path: Path) -> None:
    a, b = _exams()[:2]
    path = _csv(tmp_path / "p.csv", "exam_id,laterality,outcome,date",
                f"{a.exam_id},R,malignant,2026-06-01",
                f"{a.exam_id},Jane Doe,benign,2026-06-01",
                f"{a.exam_id},L,MRN-99812,2026-06-01",
                f"{b.exam_id},L,benign,01/06/2026",
                ",L,benign,2026-06-01",
                "ex-not-ours-4711,L,benign,2026-06-01",
                f"{b.exam_id},R,benign,2025-01-01")
    out = import_pathology(path)
    assert (out.rows, out.inserted) == (7, 1)
    assert [(r.row, r.column) for r in out.rejected] == [
        (3, "laterality"), (4, "outcome"), (5, "date"), (6, "exam_id"), (7, "exam_id"), (8, "date")]
    for r in out.rejected:
        assert r.reason.startswith(f"row {r.row}, column {r.column}: ")
        assert not any(v in r.reason for v in ("Jane", "MRN-99812", "01/06/2026", "not-ours", "2025-01-01"))
    assert "no exam radflow ingested or screened" in out.rejected[4].reason
    assert "not after the exam's study date" in out.rejected[5].reason


def test_a_file_without_its_columns_is_refused_whole(tmp_path: Path) -> None:
    _exams()
    with pytest.raises(LabelFileInvalid, match="laterality"):
        import_pathology(_csv(tmp_path / "p.csv", "exam_id,outcome,date", "ex1,benign,2026-01-01"))
    assert _stored() == {}


def test_bad_follow_up_rows_are_rejected_by_row_and_column(tmp_path: Path) -> None:
    a, b, c = _exams()[:3]
    path = _csv(tmp_path / "ris.csv", "study_instance_uid,report_date,report_text",
                f'{a.uid},2026-09-01,"{follow_up_text(2)}"',
                f',2026-09-01,"{follow_up_text(2)}"',
                f"{b.uid},2026-09-01,",
                f'{c.uid},2026-09-01,"Both breasts were imaged. Nothing is said about a category."',
                f'1.2.3.4.5.6.7,2026-09-01,"{follow_up_text(1)}"',
                f'{b.uid},2026-13-45,"{follow_up_text(1)}"')
    out = import_follow_up(path)
    assert (out.rows, out.inserted) == (6, 2)
    assert [(r.row, r.column) for r in out.rejected] == [
        (3, "accession_number or study_instance_uid"), (4, "report_text"), (5, "report_text"),
        (6, "study_instance_uid"), (7, "report_date")]
    assert all("1.2.3.4.5.6.7" not in r.reason and r.reason.startswith(f"row {r.row}, column ")
               for r in out.rejected)


class FakeOrthanc:
    """The gateway and, through it, the PACS: which studies carry which accession number."""

    def __init__(self, gateway: dict[str, str], pacs: dict[str, str], down: bool = False) -> None:
        self.gateway, self.pacs, self.down, self.asked = gateway, pacs, down, 0

    def find_study_uids_by_accession(self, accession: str) -> list[str]:
        self.asked += 1
        if self.down:
            raise OrthancUnavailable("Orthanc at http://127.0.0.1:1 did not answer")
        return [self.gateway[accession]] if accession in self.gateway else []

    def modality_find_studies(self, modality: str, query: dict[str, str]) -> list[dict[str, str]]:
        uid = self.pacs.get(query["AccessionNumber"])
        return [{"AccessionNumber": query["AccessionNumber"], "StudyInstanceUID": uid}] if uid else []


def test_accession_numbers_resolve_through_orthanc_and_are_never_stored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines import config

    a, b, c = _exams()[:3]
    monkeypatch.setenv("RADFLOW_PACS_AET", "HOSPITAL_PACS")
    config.reset_settings()
    accessions = {"ACC-20260111-0042": a.uid, "ACC-20260111-0043": b.uid}
    path = _csv(tmp_path / "ris.csv", "accession_number,report_date,report_text",
                f'ACC-20260111-0042,2026-09-01,"{follow_up_text(1)}"',
                f'ACC-20260111-0043,2026-09-01,"{follow_up_text(2)}"',
                f'ACC-20260111-0099,2026-09-01,"{follow_up_text(2)}"')
    directory = FakeOrthanc({"ACC-20260111-0042": a.uid}, {"ACC-20260111-0043": b.uid})
    out = import_follow_up(path, directory=directory)
    assert out.inserted == 4 and [(r.row, r.column) for r in out.rejected] == [(4, "accession_number")]
    assert {k[0] for k in _stored()} == {a.exam_id, b.exam_id}
    with db.get_engine().connect() as conn:  # no table holds an accession number
        for table in db.metadata.sorted_tables:
            text = json.dumps([dict(r) for r in conn.execute(sa.select(table)).mappings()], default=str)
            assert not any(acc in text for acc in accessions), table.name
    assert c.exam_id not in {k[0] for k in _stored()}

    down = import_follow_up(path, directory=FakeOrthanc({}, {}, down=True))
    assert down.inserted == 0 and len(down.rejected) == 3
    assert "Orthanc could not resolve accession numbers (OrthancUnavailable)" in down.rejected[0].reason


def test_the_cli_prints_one_json_object_with_counts_and_reasons(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _exams()[0]
    path = _csv(tmp_path / "p.csv", "exam_id,laterality,outcome,date",
                f"{a.exam_id},R,malignant,2026-06-01", f"{a.exam_id},X,benign,2026-06-01")
    assert cli.main(["labels", "import", "--pathology", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {k: out[k] for k in ("source", "rows", "outcomes", "inserted", "updated", "unchanged")} == {
        "source": "pathology", "rows": 2, "outcomes": 1, "inserted": 1, "updated": 0, "unchanged": 0}
    assert out["rejected"] == [{"row": 3, "column": "laterality",
                                "reason": "row 3, column laterality: is not one of b, bilateral, both, l, "
                                          "left, r, right"}]
    with pytest.raises(SystemExit) as refused:  # a missing file is refused before any work
        cli.main(["labels", "import", "--pathology", str(tmp_path / "absent.csv"), "--json"])
    assert refused.value.code == 2
    assert "argument --pathology: no such file" in capsys.readouterr().err
