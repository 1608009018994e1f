"""The radiologists' morning worklist page."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest

from pipelines.screening.worklist import WorklistRow, publish, render, suspicion

VIEWS = ("R-CC", "L-CC", "R-MLO", "L-MLO")


class _Table(HTMLParser):
    """Rows of <table id="worklist"><tbody>: (class attribute, [cell texts], [hrefs])."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[str, list[str], list[str]]] = []
        self._in_body = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.append((a.get("class") or "", [], []))
        elif tag == "td" and self._in_body:
            self._cell = []
        elif tag == "a" and self._in_body:
            self.rows[-1][2].append(a.get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_body = False
        elif tag == "td" and self._cell is not None:
            self.rows[-1][1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse(page: str) -> list[tuple[str, list[str], list[str]]]:
    parser = _Table()
    parser.feed(page)
    return parser.rows


def row(exam: str, score: float, flagged: bool) -> WorklistRow:
    scores = {v: round(score * (1.0 - 0.1 * i), 4) for i, v in enumerate(VIEWS)}
    return WorklistRow(exam, score, flagged, scores, f"http://pacs/app/explorer.html#study?uuid={exam}")


ROWS = [row("ex-low", 0.05, False), row("ex-top", 0.93, True), row("ex-mid", 0.41, False),
        row("ex-high", 0.77, True), row("ex-tie-b", 0.41, False)]


def test_rows_are_sorted_by_score_highest_first_with_every_exam_once() -> None:
    table = parse(render("2026-03-14", "7", ROWS))
    exams = [cells[1] for _, cells, _ in table]
    assert exams == ["ex-top", "ex-high", "ex-mid", "ex-tie-b", "ex-low"]
    assert [cells[0] for _, cells, _ in table] == ["1", "2", "3", "4", "5"]
    assert [float(cells[2]) for _, cells, _ in table] == [0.93, 0.77, 0.41, 0.41, 0.05]


def test_flagged_exams_are_marked_and_the_others_are_not() -> None:
    table = parse(render("2026-03-14", "7", ROWS))
    marks = {cells[1]: (cls, cells[4]) for cls, cells, _ in table}
    assert marks["ex-top"] == ("flagged", "FLAG") and marks["ex-high"] == ("flagged", "FLAG")
    for exam in ("ex-mid", "ex-tie-b", "ex-low"):
        assert marks[exam] == ("", "")


def test_the_summary_counts_exams_and_flags_and_names_date_and_model() -> None:
    page = render("2026-03-14", "7", ROWS)
    assert "5 exams, 2 flagged" in page
    assert "model version 7" in page
    assert "study date 2026-03-14" in page


def test_each_row_links_to_the_study_in_the_pacs_and_lists_view_scores() -> None:
    table = parse(render("2026-03-14", "7", ROWS))
    top = table[0]
    assert top[2] == ["http://pacs/app/explorer.html#study?uuid=ex-top"]
    assert all(view in top[1][5] for view in VIEWS)


def test_identifiers_are_html_escaped() -> None:
    nasty = WorklistRow("ex-<script>alert(1)</script>&", 0.5, True, {"R-CC": 0.5},
                        'http://pacs/x?a=1&b="2"')
    page = render("2026-03-14", "<b>7</b>", [nasty])
    assert "<script>" not in page and "<b>7</b>" not in page
    table = parse(page)
    assert table[0][1][1] == "ex-<script>alert(1)</script>&"  # shown as text, not markup
    assert table[0][2] == ['http://pacs/x?a=1&b="2"']


def test_an_empty_night_renders_an_empty_table() -> None:
    page = render("2026-03-14", "7", [])
    assert parse(page) == []
    assert "0 exams, 0 flagged" in page


@pytest.mark.parametrize(("score", "level"), [(0.0, 1), (0.05, 1), (0.1, 2), (0.55, 6),
                                               (0.99, 10), (1.0, 10)])
def test_suspicion_is_a_level_from_1_to_10(score: float, level: int) -> None:
    assert suspicion(score) == level


def test_publish_writes_the_page_under_the_date_and_replaces_it_on_rerun(tmp_path: Path) -> None:
    first = publish(tmp_path, "2026-03-14", "7", ROWS)
    assert first == tmp_path / "2026-03-14" / "worklist.html"
    second = publish(tmp_path, "2026-03-14", "8", ROWS[:2])
    assert second == first
    assert "model version 8" in first.read_text()
    assert len(parse(first.read_text())) == 2
    assert [p.name for p in first.parent.iterdir()] == ["worklist.html"]  # no temp files left
