"""RIS CSV exports of reports: columns, delimiters, addenda, rows that cannot be used."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.errors import LabelFileInvalid
from pipelines.labels.birads import read_report
from pipelines.labels.ris import read_ris_export


def _write(tmp_path: Path, content: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / "ris.csv"
    path.write_text(content, encoding=encoding)
    return path


def test_reports_are_keyed_by_accession_number(tmp_path: Path) -> None:
    path = _write(tmp_path, 'accession_number,report_text\nA100,"Right breast: BI-RADS 1.\nLeft '
                  'breast: BI-RADS 4."\nA101,Overall BI-RADS 2.\n')
    reports = read_ris_export(path)
    assert set(reports.texts) == {"A100", "A101"}
    assert read_report(reports.texts["A100"]).categories == {"R": 1, "L": 4}
    assert reports.skipped == []


def test_study_uid_when_accession_is_empty_and_semicolons_and_bom(tmp_path: Path) -> None:
    path = _write(tmp_path, "Accession Number;Study_Instance_UID;Report_Text\n;1.2.3.4;BI-RADS 1\n",
                  encoding="utf-8-sig")
    assert read_ris_export(path).texts == {"1.2.3.4": "BI-RADS 1"}


def test_the_addendum_column_revises_the_report(tmp_path: Path) -> None:
    path = _write(tmp_path, "accession_number,report_text,addendum\n"
                  "A1,Left breast: asymmetry. BI-RADS 0. Right breast: BI-RADS 1.,"
                  "Left breast: spot views negative. BI-RADS 1.\n")
    reading = read_report(read_ris_export(path).texts["A1"])
    assert reading.categories == {"R": 1, "L": 1}
    assert reading.sources["L"] == "birads-addendum"


def test_a_later_row_of_the_same_study_is_an_addendum_in_date_order(tmp_path: Path) -> None:
    path = _write(tmp_path, "accession_number,report_date,report_text\n"
                  "A1,2026-03-10,Left breast: BI-RADS 4 after diagnostic work-up.\n"
                  "A1,2026-03-01,Left breast: BI-RADS 0. Right breast: BI-RADS 1.\n")
    text = read_ris_export(path).texts["A1"]
    assert text.index("BI-RADS 0") < text.index("ADDENDUM") < text.index("BI-RADS 4")
    assert read_report(text).categories == {"R": 1, "L": 4}


def test_unusable_rows_are_reported_with_row_numbers_and_no_values(tmp_path: Path) -> None:
    path = _write(tmp_path, "accession_number,report_text\n,BI-RADS 1\nSECRET42,\nA2,BI-RADS 2\n")
    reports = read_ris_export(path)
    assert reports.texts == {"A2": "BI-RADS 2"}
    assert [n for n, _ in reports.skipped] == [2, 3]
    assert all("SECRET42" not in reason for _, reason in reports.skipped)


def test_a_file_without_report_text_is_refused_naming_the_columns(tmp_path: Path) -> None:
    path = _write(tmp_path, "accession_number,text\nA1,BI-RADS 1\n")
    with pytest.raises(LabelFileInvalid, match="report_text"):
        read_ris_export(path)
