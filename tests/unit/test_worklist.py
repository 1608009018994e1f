"""The radiologists' worklist: the night's page, its images, CSV and JSON exports, the index,
and publication by one rename."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.domain import QcFlag
from pipelines.errors import PermanentError
from pipelines.screening.worklist import (
    CSV_COLUMNS,
    THUMB_HEIGHT,
    Night,
    WorklistEntry,
    drafted_night,
    publish_index,
    publish_night,
    thumbnails,
)

VIEWS = ("R-CC", "L-CC", "R-MLO", "L-MLO")
BLUR = QcFlag("motion_blur", "edge sharpness 0.12 below the limit 0.30", 0.12)


def picture(seed: int, h: int = 64, w: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """A grey image with a bright blob, and a heatmap (1/16 size) hot on the blob."""
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = 16 + seed % 32, 12 + seed % 24
    image = (0.2 + 0.7 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 40.0)).astype(np.float32)
    heat = np.zeros((h // 16, w // 16), np.float32)
    heat[cy // 16, cx // 16] = 1.0
    return image, heat


def entry(exam: str, score: float, suspicion: int, flagged: bool = False,
          qc: dict[str, list[QcFlag]] | None = None, images: bool = True) -> WorklistEntry:
    return WorklistEntry(
        exam_id=exam, score=score, suspicion=suspicion, flagged=flagged,
        flag_reason="operating point" if flagged else "",
        view_scores={v: round(score - 0.01 * i, 4) for i, v in enumerate(VIEWS)}, qc=qc or {},
        study_url=f"http://127.0.0.1:8042/app/explorer.html#study?uuid={exam}",
        images={v: picture(i) for i, v in enumerate(VIEWS)} if images else {})


NIGHT = Night(study_date="2026-03-14", task="mammo", model_version="7", shadow=None, quarantined=2,
              capacity=None)
ENTRIES = [entry("ex-low", 0.05, 1), entry("ex-top", 0.93, 10, True, {"L-MLO": [BLUR]}),
           entry("ex-mid", 0.41, 5), entry("ex-high", 0.77, 9, True), entry("ex-tie", 0.45, 5)]


class _Rows(HTMLParser):
    """The worklist table's rows: attributes, cell texts, link targets and image sources."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict] = []
        self._text: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "tr" and "data-exam" in a:
            self.rows.append({"attrs": a, "cells": [], "hrefs": [], "imgs": [], "qc": [], "discounted": []})
        elif not self.rows:
            return
        elif tag == "td":
            self._text = []
        elif tag == "a":
            self.rows[-1]["hrefs"].append(a["href"])
        elif tag == "img":
            self.rows[-1]["imgs"].append(a["src"])
        elif tag == "li":
            self.rows[-1]["qc"].append(a.get("data-code"))
        elif tag == "figure" and "discounted" in a.get("class", ""):
            self.rows[-1]["discounted"].append(a["data-view"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._text is not None and self.rows:
            self.rows[-1]["cells"].append("".join(self._text).strip())
            self._text = None

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)


def rows_of(page: Path) -> list[dict]:
    parser = _Rows()
    parser.feed(page.read_text())
    return parser.rows


def test_rows_are_sorted_by_suspicion_then_score_each_exam_once(tmp_path: Path) -> None:
    files = publish_night(tmp_path, NIGHT, ENTRIES)
    rows = rows_of(files.html)
    assert [r["attrs"]["data-exam"] for r in rows] == ["ex-top", "ex-high", "ex-tie", "ex-mid", "ex-low"]
    assert [r["cells"][0] for r in rows] == ["1", "2", "3", "4", "5"]
    assert [r["cells"][2] for r in rows] == ["10", "9", "5", "5", "1"]
    # suspicion decides before the raw score (levels may come from another calibration)
    odd = publish_night(tmp_path, NIGHT, [entry("ex-s8", 0.70, 8), entry("ex-s9", 0.60, 9)])
    assert [r["attrs"]["data-exam"] for r in rows_of(odd.html)] == ["ex-s9", "ex-s8"]


def test_flagged_rows_say_why_and_the_others_carry_no_flag(tmp_path: Path) -> None:
    rows = {r["attrs"]["data-exam"]: r for r in rows_of(publish_night(tmp_path, NIGHT, ENTRIES).html)}
    for exam in ("ex-top", "ex-high"):
        assert rows[exam]["attrs"]["class"] == "flagged"
        assert rows[exam]["cells"][4] == "FLAGGEDoperating point"
    for exam in ("ex-mid", "ex-tie", "ex-low"):
        assert rows[exam]["attrs"]["class"] == "unflagged" and rows[exam]["cells"][4] == ""


def test_discounted_views_are_marked_with_their_qc_reason(tmp_path: Path) -> None:
    files = publish_night(tmp_path, NIGHT, ENTRIES)
    rows = {r["attrs"]["data-exam"]: r for r in rows_of(files.html)}
    assert rows["ex-top"]["discounted"] == ["L-MLO"] and rows["ex-top"]["qc"] == ["motion_blur"]
    assert "edge sharpness 0.12 below the limit 0.30" in rows["ex-top"]["cells"][5]
    assert "discounted, not in the exam score" in rows["ex-top"]["cells"][5]
    assert rows["ex-high"]["discounted"] == [] and rows["ex-high"]["qc"] == []


def test_each_row_links_to_its_study_and_every_image_it_shows_exists(tmp_path: Path) -> None:
    files = publish_night(tmp_path, NIGHT, ENTRIES)
    for row in rows_of(files.html):
        exam = row["attrs"]["data-exam"]
        assert row["hrefs"] == [f"http://127.0.0.1:8042/app/explorer.html#study?uuid={exam}"]
        assert len(row["imgs"]) == 2 * len(VIEWS)
        for src in row["imgs"]:
            with Image.open(files.folder / src) as png:
                assert png.height == THUMB_HEIGHT and png.width == 96


def test_the_overlay_is_hot_where_the_heatmap_is_and_grey_elsewhere() -> None:
    image, heat = picture(0)
    grey, overlay = thumbnails(image, heat, "ex-1", "R-CC")
    rgb = np.asarray(overlay, dtype=int)
    hot = rgb[48, 16]  # centre of heatmap cell (1, 0): one cell is 32 px in the 128 px thumbnail
    cold = rgb[THUMB_HEIGHT - 4, 90]  # far from it
    assert hot[0] - hot[2] > 100  # red-yellow over the blob
    assert abs(cold[0] - cold[2]) <= 2  # untouched grey
    assert grey.mode == "L" and np.asarray(grey)[THUMB_HEIGHT - 4, 90] == round(0.2 * 255)


def test_a_bad_image_names_exam_and_view_and_keeps_the_previous_night(tmp_path: Path) -> None:
    good = publish_night(tmp_path, NIGHT, ENTRIES)
    before = good.html.read_text()
    bad = entry("ex-bad", 0.5, 5)
    bad.images["R-MLO"] = (np.zeros((3, 4, 5), np.float32), np.zeros((1, 1), np.float32))
    with pytest.raises(PermanentError, match=r"exam ex-bad view R-MLO: image .*\(3, 4, 5\)"):
        publish_night(tmp_path, NIGHT, [*ENTRIES, bad])
    assert good.html.read_text() == before
    assert sorted(p.name for p in (tmp_path / "mammo").iterdir() if p.name.startswith(".")) == \
        [os.readlink(tmp_path / "mammo" / "2026-03-14")]  # no staging folder left behind


def _bytes(folder: Path) -> dict[Path, bytes]:
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_night_drafted_batch_by_batch_is_the_night_published_at_once(tmp_path: Path) -> None:
    """The merge ranks the whole night, then renders one batch's images at a time."""
    whole = publish_night(tmp_path / "whole", NIGHT, ENTRIES)
    bare = [dataclasses.replace(e, images={}) for e in ENTRIES]
    with drafted_night(tmp_path / "parts", NIGHT, bare) as draft:
        for first in (4, 0, 2):  # batches in any order, each with its own images only
            draft.render(first, ENTRIES[first:first + 2])
        assert not draft.files.html.exists()  # nothing published before the block ends
    assert draft.files.html.is_file()
    assert _bytes(draft.files.folder) == _bytes(whole.folder)
    with pytest.raises(ValueError, match="exam ex-top is not entry 0"), \
            drafted_night(tmp_path / "parts", NIGHT, bare) as draft:
        draft.render(0, ENTRIES[1:2])


def test_a_draft_failing_in_a_later_batch_keeps_the_previous_night(tmp_path: Path) -> None:
    good = publish_night(tmp_path, NIGHT, ENTRIES)
    before = _bytes(good.folder)
    bad = entry("ex-bad", 0.5, 5)
    bad.images["R-MLO"] = (np.zeros((3, 4, 5), np.float32), np.zeros((1, 1), np.float32))
    night = [dataclasses.replace(e, images={}) for e in [*ENTRIES, bad]]
    with pytest.raises(PermanentError, match="exam ex-bad view R-MLO"), \
            drafted_night(tmp_path, Night("2026-03-14", "mammo", "8", None, 0, None), night) as draft:
        draft.render(0, ENTRIES)
        draft.render(5, [bad])
    assert _bytes(good.folder) == before
    assert sorted(p.name for p in (tmp_path / "mammo").iterdir() if p.name.startswith(".")) == \
        [os.readlink(tmp_path / "mammo" / "2026-03-14")]  # no staging folder left behind


def test_exports_hold_the_same_rows_in_page_order(tmp_path: Path) -> None:
    files = publish_night(tmp_path, NIGHT, ENTRIES)
    table = list(csv.DictReader(io.StringIO(files.csv.read_text())))
    assert list(table[0]) == [*CSV_COLUMNS, *(f"score_{v}" for v in VIEWS)]
    assert [r["exam_id"] for r in table] == ["ex-top", "ex-high", "ex-tie", "ex-mid", "ex-low"]
    top = table[0]
    assert (top["rank"], top["suspicion"], top["flagged"], top["flag_reason"]) == ("1", "10", "1",
                                                                                   "operating point")
    assert (top["discounted_views"], top["qc_flags"]) == ("L-MLO", "L-MLO:motion_blur")
    assert float(top["score"]) == 0.93 and float(top["score_L-CC"]) == 0.92
    data = json.loads(files.json.read_text())
    assert (data["exams"], data["flagged"], data["quarantined"], data["flag_rule"]) == (5, 2, 2,
                                                                                        "operating point")
    assert [r["exam_id"] for r in data["rows"]] == [r["exam_id"] for r in table]
    assert data["rows"][0]["qc"] == {"L-MLO": [{"code": "motion_blur", "reason": BLUR.reason,
                                                "value": 0.12}]}


def test_a_rerun_replaces_the_night_and_identical_input_gives_identical_bytes(tmp_path: Path) -> None:
    first = publish_night(tmp_path, NIGHT, ENTRIES)
    snapshot = {p.relative_to(first.folder): p.read_bytes() for p in first.folder.rglob("*") if p.is_file()}
    smaller = publish_night(tmp_path, Night("2026-03-14", "mammo", "8", None, 0, 1), ENTRIES[:2])
    assert smaller.html == first.html and len(rows_of(smaller.html)) == 2
    assert "model version 8" in smaller.html.read_text()
    assert len(list((smaller.folder / "img").iterdir())) == 2 * 2 * len(VIEWS)  # old images gone
    again = publish_night(tmp_path, NIGHT, list(reversed(ENTRIES)))
    assert {p.relative_to(again.folder): p.read_bytes()
            for p in again.folder.rglob("*") if p.is_file()} == snapshot
    assert len([p for p in (tmp_path / "mammo").iterdir() if p.name.startswith(".")]) == 1


def test_a_night_folder_written_by_the_old_layout_is_replaced(tmp_path: Path) -> None:
    legacy = tmp_path / "mammo" / "2026-03-14"
    legacy.mkdir(parents=True)
    (legacy / "worklist.html").write_text("old")
    files = publish_night(tmp_path, NIGHT, ENTRIES)
    assert legacy.is_symlink() and files.html.exists() and not (legacy / "worklist.html").exists()


def test_capacity_shadow_and_escaping_show_on_the_page(tmp_path: Path) -> None:
    nasty = entry("ex-<script>&", 0.5, 6, True, {"R-CC": [QcFlag("foreign_object", "<b>button</b>", 1)]})
    nasty = WorklistEntry(**{**nasty.__dict__, "flag_reason": "reading capacity (top 3)"})
    night = Night("2026-03-14", "mammo", "<i>7</i>", {"model_version": "9", "rank_correlation": 0.91},
                  0, 3)
    page = publish_night(tmp_path, night, [nasty]).html.read_text()
    assert "<script>" not in page and "<b>button</b>" not in page and "<i>7</i>" not in page
    assert rows_of(publish_night(tmp_path, night, [nasty]).html)[0]["attrs"]["data-exam"] == "ex-<script>&"
    assert "flagged by reading capacity (top 3)" in page
    assert "rank_correlation 0.91" in page


@pytest.mark.parametrize(("night", "entries", "message"), [
    (Night("14.03.2026", "mammo", "7", None, 0, None), [], "study date '14.03.2026'"),
    (Night("2026-03-14", "../etc", "7", None, 0, None), [], "task name '../etc'"),
    (NIGHT, [WorklistEntry(**{**ENTRIES[0].__dict__, "study_url": "javascript:alert(1)"})],
     "exam ex-low: study link must be http"),
    (NIGHT, [WorklistEntry(**{**ENTRIES[0].__dict__, "suspicion": 11})], "exam ex-low: suspicion"),
])
def test_bad_input_is_refused_with_the_value_named(tmp_path: Path, night: Night,
                                                   entries: list[WorklistEntry], message: str) -> None:
    with pytest.raises(PermanentError, match=message.replace("(", r"\(").replace(".", r"\.")):
        publish_night(tmp_path, night, entries)
    assert not (tmp_path / "mammo" / "2026-03-14").exists()


def test_an_empty_night_is_published_with_an_empty_table(tmp_path: Path) -> None:
    files = publish_night(tmp_path, NIGHT, [])
    assert rows_of(files.html) == []
    assert "0 exams, 0 flagged" in files.html.read_text()
    assert files.csv.read_text().splitlines() == [",".join(CSV_COLUMNS)]


def test_the_index_lists_every_night_newest_first_with_counts(tmp_path: Path) -> None:
    publish_night(tmp_path, NIGHT, ENTRIES)
    publish_night(tmp_path, Night("2026-03-15", "mammo", "7", None, 0, None), ENTRIES[:3])
    publish_night(tmp_path, Night("2026-03-15", "chest", "2", None, 1, None), ENTRIES[3:])
    index = publish_index(tmp_path)
    assert index == tmp_path / "index.html"
    text = index.read_text()
    links = [line.split('href="')[1].split('"')[0] for line in text.splitlines() if 'href="' in line]
    assert links == ["chest/2026-03-15/index.html", "mammo/2026-03-15/index.html",
                     "mammo/2026-03-14/index.html"]
    assert '<td class="exams">5</td><td class="flagged">2</td>' in text
    assert all((tmp_path / link).exists() for link in links)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_numpy_scalars_from_the_run_are_written_as_plain_numbers(tmp_path: Path) -> None:
    e = entry("ex-np", 0.5, 5, True, {"R-CC": [QcFlag("grid_lines", "grid period 4 px", np.float32(0.5))]})
    e = WorklistEntry(**{**e.__dict__, "score": np.float64(0.5), "suspicion": np.int64(5),
                         "flagged": np.bool_(True)})
    night = Night("2026-03-14", "mammo", "7", {"score_correlation": np.float64(0.25)}, 0, None)
    data = json.loads(publish_night(tmp_path, night, [e]).json.read_text())
    assert (data["rows"][0]["suspicion"], data["rows"][0]["flagged"]) == (5, True)
    assert data["rows"][0]["qc"]["R-CC"][0]["value"] == 0.5 and data["shadow"]["score_correlation"] == 0.25
