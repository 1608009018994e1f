"""Burned-in text: found in the pixels of synthetic views that carry it, not in those that
do not, markers pass; the ingest policy quarantines or masks and records 113101."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom import Dataset

from pipelines.config import reset_settings
from pipelines.deid import MemoryKeys, deidentify_exam
from pipelines.domain import SCREENING_VIEWS
from pipelines.errors import InvalidStudy
from pipelines.imaging.burned_in import find_text_lines, mask_lines
from pipelines.imaging.preprocess import view_pixels
from pipelines.ingest.exams import assemble
from pipelines.synth.generate import iter_exams
from pipelines.synth.images import text_mask

SITES = ("general", "north", "east", "south")  # one vendor profile each (MONOCHROME1 included)


def synth_views(site: str, exams: int, rate: float, scale: float = 0.125) -> list[tuple[bool, Dataset]]:
    """(carries burned-in text, dataset) of every view of a synthetic batch."""
    out = []
    for exam in iter_exams(exams, "2026-03-02", site, 17, scale=scale, burned_in_text_rate=rate):
        for instance in exam.instances:
            if instance.name != "report":
                out.append((instance.name in exam.plan.burned_in_text, instance.dataset))
    return out


@pytest.mark.parametrize("site", SITES)
def test_text_is_found_exactly_in_the_views_that_carry_it(site: str) -> None:
    views = synth_views(site, 10, rate=0.6)
    truth = [has_text for has_text, _ in views]
    found = [bool(find_text_lines(view_pixels(ds, 128))) for _, ds in views]
    assert sum(truth) >= 3, "the batch should plant text in several views"
    assert found == truth


def test_text_is_found_on_a_full_size_view() -> None:
    views = synth_views("general", 2, rate=1.0, scale=1.0)
    for has_text, ds in views:
        lines = find_text_lines(view_pixels(ds, 128))
        assert bool(lines) == has_text
        if has_text:
            assert sum(line.glyphs for line in lines) >= 15  # a name, an MRN and a date


def display_with(text: str, rows: int = 512, cols: int = 416) -> np.ndarray:
    """A dark field with a bright half-ellipse breast on the left and `text` at the top right."""
    yy, xx = np.mgrid[0:rows, 0:cols]
    breast = ((yy - rows / 2) / (rows * 0.38)) ** 2 + (xx / (cols * 0.7)) ** 2 < 1
    image = np.where(breast, 0.6, 0.05).astype(np.float32)
    rng = np.random.default_rng(3)
    image += rng.normal(0, 0.01, image.shape).astype(np.float32)
    if text:
        image[text_mask(text, (rows, cols))] = 1.0
    return image


def test_a_laterality_marker_is_not_text_but_a_name_is() -> None:
    assert find_text_lines(display_with("")) == []
    assert find_text_lines(display_with("RMLO")) == []
    lines = find_text_lines(display_with("SMITH ANNA 0412345"))
    assert lines and sum(line.glyphs for line in lines) >= 12  # the wide gap may split it
    assert lines[0].describe(512, 416) == f"{lines[0].glyphs} characters at the top right"


def test_masking_blanks_the_line_and_nothing_is_found_again() -> None:
    image = display_with("SMITH ANNA 0412345")
    lines = find_text_lines(image)
    masked = mask_lines(image, lines)
    assert find_text_lines(masked) == []
    line = lines[0]
    assert float(masked[line.top:line.bottom, line.left:line.right].max()) == float(image.min())
    outside = np.ones(image.shape, dtype=bool)
    outside[line.top:line.bottom, line.left:line.right] = False
    np.testing.assert_array_equal(masked[outside], image[outside])


def test_a_background_too_busy_to_check_is_refused() -> None:
    image = np.zeros((512, 512), dtype=np.float32)
    image[:, :200] = 0.6  # the body
    for dy in range(3):  # a dense grid of 3x3 bright dots in the air: over 5,000 marks
        for dx in range(3):
            image[dy::5, 210 + dx::5] = 1.0
    with pytest.raises(InvalidStudy, match="too busy to rule out burned-in text"):
        find_text_lines(image)


def text_exam() -> tuple[list[Dataset], str]:
    exam = next(e for e in iter_exams(10, "2026-03-02", "general", 17, burned_in_text_rate=0.6)
                if e.plan.burned_in_text)
    return [i.dataset for i in exam.instances], exam.plan.burned_in_text[0]


def test_ingest_quarantines_an_exam_with_text_naming_the_view_by_default() -> None:
    datasets, view = text_exam()
    with pytest.raises(InvalidStudy) as err:
        assemble(datasets, "orthanc:1234abcd", 64, 48)
    message = str(err.value)
    assert f"view {view}: burned-in text detected in the pixels" in message
    assert "burned_in_text=quarantine" in message


def test_the_mask_policy_blanks_the_text_and_records_the_clean_pixel_option(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RADFLOW_BURNED_IN_TEXT", "mask")
    reset_settings()
    datasets, view = text_exam()
    exam = assemble(datasets, "orthanc:1234abcd", 64, 48)
    assert exam.pixels_cleaned == (view,)
    assert sorted(exam.views) == sorted(SCREENING_VIEWS)
    clean = deidentify_exam(exam.header_datasets(), MemoryKeys(), pixels_cleaned=exam.pixels_cleaned)
    for name, header in clean.headers.items():
        codes = [item["00080100"]["Value"][0] for item in header["00120064"]["Value"]]
        assert ("113101" in codes) == (name == view), name
    assert clean.headers[view]["00280301"]["Value"] == ["NO"]  # BurnedInAnnotation
