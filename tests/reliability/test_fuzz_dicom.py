"""Fuzzing the DICOM boundary (issue 18, items 7 and 9): mutated files through ingest.

FILES cases are drawn by hypothesis from a fixed seed (tests/reliability/fuzz.py: headers,
sequences, VRs, value lengths, transfer syntaxes and pixel data of pydicom's, pydicom-data's
and deid-data's test files and of a small `radflow synth` exam mutated, at the dataset and
at the byte level). Each mutated file goes, inside its study, through what `radflow ingest`
does to every study once downloaded (`prepare_files`, then `ingest_prepared`: read, route,
views, labels, decode, display, burned-in text, preprocess, attributes, de-identify, the
manifest and the lake, or the quarantine), in worker processes with a time limit
(tests/reliability/fuzz_runner.py). Asserted:

- 0 crashes: every study is ingested or quarantined; no exception escapes and none is one
  radflow's checks did not foresee (`UnforeseenInput`);
- 0 hangs: no study slower than 5 s twice and more than 10 times its clean control study;
- every rejection is in the quarantine table with its reason;
- 0 identifying values (`original_identifiers` of the inputs) in what was published
  (lake headers, manifest rows) or in any reason;
- every reason starts with its step and names an attribute (or a named check), never only
  an exception's text (item 9).

`make test` runs CI_FILES cases; `make reliability-full` runs RADFLOW_FUZZ_FILES=5000, each
recording its figures as its own check (docs/reliability.md). The regression tests below
are the bugs the fuzzer found, each reduced to one file.
"""

from __future__ import annotations

import collections
import io
import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest

from pipelines.ingest.prepare import prepare_files
from pipelines.ingest.steps import STEPS
from tests.reliability import fuzz, fuzz_runner
from tests.reliability.figures import record

CI_FILES = 100  # 14-51 s measured on the loaded 2-core machine (load 5-15)
SEED = 20260818
FILES = int(os.environ.get("RADFLOW_FUZZ_FILES", str(CI_FILES)))
WORKERS = int(os.environ.get("RADFLOW_FUZZ_WORKERS", "2"))
RUN = "full" if FILES > CI_FILES else "ci"
SUFFIX = "_full" if RUN == "full" else ""

STEP = re.compile(rf"^({'|'.join(re.escape(s) for s in STEPS)}): ")
# A reason names an attribute by its DICOM keyword, by its tag (a private or unknown data
# element: "(0029,1001)"), or one of these named checks.
NAMED_CHECKS = re.compile(
    r"\([0-9A-F]{4},[0-9A-F]{4}\)|\bmodality\b|\bview [RL]-(CC|MLO)(, [RL]-(CC|MLO))* (missing|repeated)"
    r"|\bview \S+ is not a screening view|'DICM' prefix|File Meta Information|burned-in text detected"
    r"|bright marks outside the body|FOR PRESENTATION|body part")
# Only an exception's text, "<step>: [exam ...: ]ValueError[: ...]", or an exception no check
# foresaw ("unexpected KeyError ...", as ingest's catch-all read before item 9).
GENERIC = re.compile(r"^[\w -]+: (exam \S+( view \S+)?: )?[A-Z]\w*(Error|Exception|Warning)\b"
                     r"|\bunexpected [A-Z]\w*(Error|Exception|Warning)?\b")


def keywords() -> frozenset[str]:
    from pydicom.datadict import keyword_dict

    return frozenset(keyword_dict)


def names_attribute(reason: str) -> bool:
    words = set(re.findall(r"[A-Za-z][A-Za-z0-9]+", reason))
    return bool(words & keywords()) or bool(NAMED_CHECKS.search(reason))


def shape(reason: str) -> str:
    """A reason without its exam label, instance id and numbers (to count distinct reasons)."""
    reason = re.sub(r"orthanc:\w+|fuzz\d+-[\w-]+|ex-\w+", "<id>", reason)
    return re.sub(r"\d+", "N", reason)


def check_reasons(reasons: list[str]) -> dict[str, int]:
    """Item 9's figures over `reasons`."""
    return {
        "reasons_checked": len(reasons),
        "without_step": sum(not STEP.match(r) for r in reasons),
        "without_attribute": sum(not names_attribute(r) for r in reasons),
        "generic_exception_text": sum(bool(GENERIC.search(r)) for r in reasons),
    }


def test_mutated_dicom_files_are_ingested_or_quarantined_with_a_named_reason(tmp_path: Path) -> None:
    started = time.monotonic()
    seeds = fuzz.corpus_seeds()
    cases = fuzz.generate(FILES, SEED, seeds)
    if RUN == "full":  # and every corpus file unmutated, for its reasons (item 9)
        cases += fuzz.plain_cases(seeds)
    outcomes = fuzz_runner.run_cases(cases, WORKERS, tmp_path)
    seconds = time.monotonic() - started

    by_status = collections.Counter(o.status for o in outcomes)
    rejected = [o for o in outcomes if o.status == "rejected"]
    reasons = [o.reason for o in outcomes if o.reason]
    figures = {
        "files_tried": len(outcomes), "mutated_files": FILES, "passed": by_status["passed"],
        "rejected": len(rejected),
        "crashes": by_status["crash"],
        "hangs_over_5s": sum(o.hung for o in outcomes),
        "phi_values_in_passed_output": sum(o.leaks_in_output for o in outcomes),
        "phi_values_in_reasons": sum(o.leaks_in_reason for o in outcomes),
        "slowest_file_s": round(max(max(o.seconds, o.first_seconds) for o in outcomes), 2),
        "distinct_rejection_reasons": len({shape(r.reason) for r in rejected}),
        "steps_that_rejected": len({r.reason.split(":", 1)[0] for r in rejected}),
        "rejected_by_phi_check": sum(o.phi_check for o in rejected),
        "corpus_seed_files": len(seeds),
    }
    record(7, f"fuzz_dicom{SUFFIX}", figures, seconds=seconds, run=RUN,
           note=f"{FILES} mutated files drawn by hypothesis (seed {SEED}) from {len(seeds)} seeds "
                f"(pydicom, pydicom-data, deid-data test files and synthetic MG exams)"
                f"{', and every corpus file unmutated' if RUN == 'full' else ''}; "
                f"{WORKERS} worker processes; a hang is a file over 5 s twice and over 10x its "
                f"clean control study")
    item9 = check_reasons(reasons) | {"with_identifying_values": figures["phi_values_in_reasons"]}
    record(9, f"failure_reasons{SUFFIX}", item9, seconds=seconds, run=RUN,
           note=f"every quarantine reason of the {RUN} fuzz run (item 7)")

    def show(found: list[fuzz_runner.Outcome]) -> str:
        return json.dumps([{"outcome": o.crash or o.reason, "seconds": round(o.seconds, 2),
                            "case": fuzz.describe(cases[o.index])} for o in found[:5]], indent=1)

    assert by_status["crash"] == 0, show([o for o in outcomes if o.status == "crash"])
    assert figures["hangs_over_5s"] == 0, show([o for o in outcomes if o.hung])
    assert all(o.quarantined for o in rejected), show([o for o in rejected if not o.quarantined])
    assert figures["phi_values_in_passed_output"] == 0, show([o for o in outcomes if o.leaks_in_output])
    assert figures["phi_values_in_reasons"] == 0, show([o for o in outcomes if o.leaks_in_reason])
    # what passed could be scanned whole: the file of each view read for its identifiers
    assert not [o for o in outcomes if o.status == "passed" and o.unscanned]
    assert item9["without_step"] == 0, [r for r in reasons if not STEP.match(r)][:5]
    assert item9["without_attribute"] == 0, [r for r in reasons if not names_attribute(r)][:5]
    assert item9["generic_exception_text"] == 0, [r for r in reasons if GENERIC.search(r)][:5]
    # the run reached every side: clean and mutated files pass, many steps refuse
    assert figures["passed"] > 0 and figures["steps_that_rejected"] >= 3, figures


def test_the_reason_checks_catch_what_item_9_forbids() -> None:
    assert check_reasons([
        "unexpected ValueError while preparing the study",  # ingest's catch-all before item 9
        "decode: exam orthanc:ab12cd34 view R-CC: ValueError: bad marker",
        "views: exam orthanc:ab12cd34: something odd",
        "decode: exam orthanc:ab12cd34 view R-CC: PixelData cannot be decoded (transfer syntax "
        "1.2.840.10008.1.2.4.90): Rows must be one integer from 1 to 65535 (Image Pixel module)",
        "views: exam orthanc:ab12cd34: view R-MLO missing: got L-CC, L-MLO, R-CC",
    ]) == {"reasons_checked": 5, "without_step": 1, "without_attribute": 3, "generic_exception_text": 2}


# ------------------------------------------------------------------ bugs the fuzzer found

def _study(ds_edit: Callable[[pydicom.Dataset], None] | None = None,
           bytes_edit: Callable[[bytes], bytes] | None = None) -> list[tuple[str, bytes]]:
    """A small synthetic exam's files, its R-CC view's dataset or file bytes edited."""
    from tests.unit.dicom_builders import synth_mammo_views

    files = []
    for n, ds in enumerate(synth_mammo_views(scale=0.03)):
        if n == 0 and ds_edit is not None:
            ds_edit(ds)
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        blob = buffer.getvalue()
        files.append((f"instance-{n}", bytes_edit(blob) if n == 0 and bytes_edit else blob))
    return files


def test_a_clean_synthetic_exam_passes_the_same_path() -> None:
    assert prepare_files("0123456789-clean", _study()).exam is not None


def test_an_image_without_any_region_above_air_is_searched_for_text_without_failing() -> None:
    """body_mask returned a half-size mask when no region stood out (a 16 x 16 CT relabelled
    as a view): "operands could not be broadcast together" in find_text_lines."""
    from pipelines.imaging.burned_in import body_mask, find_text_lines

    flat = np.zeros((16, 16), np.float32)
    flat[0, 0] = 1.0
    assert body_mask(flat, 0.5).shape == (16, 16)
    assert find_text_lines(flat) == []


def test_a_modality_lut_item_without_its_descriptor_is_refused_naming_it() -> None:
    """pydicom's apply_modality_lut raised AttributeError (LUTDescriptor), KeyError or
    TypeError on a malformed Modality LUT Sequence."""
    from pydicom import Dataset

    def lut_without_descriptor(ds: Dataset) -> None:
        item = Dataset()
        item.add_new("LUTData", "US", [0, 1, 2])
        ds.ModalityLUTSequence = [item]

    refused = prepare_files("0123456789-lut", _study(lut_without_descriptor))
    assert refused.refusal is not None and not refused.unforeseen
    assert refused.refusal.startswith("display: ") and "ModalityLUTSequence" in refused.refusal


def test_an_element_of_an_unknown_vr_is_refused_when_read_naming_it() -> None:
    """pydicom converts elements lazily: an unknown VR raised NotImplementedError in
    whichever step read the element first (routing, for Manufacturer)."""
    def unknown_vr(blob: bytes) -> bytes:
        return blob.replace(b"\x08\x00\x70\x00LO", b"\x08\x00\x70\x00Ge", 1)

    refused = prepare_files("0123456789-vr", _study(bytes_edit=unknown_vr))
    assert refused.refusal is not None and not refused.unforeseen
    assert refused.refusal.startswith("read: ") and "Manufacturer (0008,0070)" in refused.refusal


def test_a_transfer_syntax_uid_of_another_vr_is_refused_when_read() -> None:
    """A TransferSyntaxUID read as another VR is a str, not a UID: `is_native` raised
    AttributeError while decoding."""
    def syntax_as_lo(blob: bytes) -> bytes:
        return blob.replace(b"\x02\x00\x10\x00UI", b"\x02\x00\x10\x00LO", 1)

    refused = prepare_files("0123456789-ts", _study(bytes_edit=syntax_as_lo))
    assert refused.refusal is not None and not refused.unforeseen
    assert refused.refusal.startswith("read: ") and "TransferSyntaxUID" in refused.refusal


@pytest.mark.parametrize(("keyword", "value"), [("Rows", "many"), ("BitsStored", 40), ("SamplesPerPixel", 0)])
def test_a_malformed_image_pixel_attribute_is_refused_before_decoding_naming_it(
        keyword: str, value: object) -> None:
    def bad_pixel_module(ds: pydicom.Dataset) -> None:
        ds.add_new(keyword, "SH" if isinstance(value, str) else "US", value)

    refused = prepare_files("0123456789-px", _study(bad_pixel_module))
    assert refused.refusal is not None and not refused.unforeseen
    assert refused.refusal.startswith("decode: ") and keyword in refused.refusal


def test_a_view_code_sequence_of_another_vr_is_refused_by_the_view_policy() -> None:
    """view_of read ViewCodeSequence[0] of a number: TypeError."""
    def codes_as_number(ds: pydicom.Dataset) -> None:
        del ds.ViewCodeSequence
        ds.add_new("ViewCodeSequence", "UL", 255)

    refused = prepare_files("0123456789-vc", _study(codes_as_number))
    assert refused.refusal is not None and not refused.unforeseen
    assert refused.refusal.startswith("views: ") and "R-CC missing" in refused.refusal


def test_an_instance_number_that_is_no_integer_is_refused_naming_it() -> None:
    """The view policy ranked images by int(InstanceNumber): ValueError."""
    def instance_as_text(ds: pydicom.Dataset) -> None:
        ds.add_new("InstanceNumber", "LO", "first")

    refused = prepare_files("0123456789-in", _study(instance_as_text))
    assert refused.refusal is not None and not refused.unforeseen
    assert refused.refusal.startswith("views: ") and "InstanceNumber" in refused.refusal


def test_a_report_whose_content_sequence_is_no_sequence_is_refused_naming_it() -> None:
    """report_text iterated a ContentSequence read as another VR: TypeError."""
    from pydicom.uid import ExplicitVRLittleEndian

    from tests.unit.dicom_builders import sr_report

    report = sr_report(["BI-RADS 1."], "1.2.3.4")
    del report.ContentSequence
    report.add_new("ContentSequence", "UL", 7)
    report.file_meta = pydicom.dataset.FileMetaDataset()
    report.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    report.SOPClassUID = report.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    report.file_meta.MediaStorageSOPInstanceUID = report.SOPInstanceUID
    buffer = io.BytesIO()
    report.save_as(buffer, enforce_file_format=True)
    refused = prepare_files("0123456789-sr", [*_study(), ("report", buffer.getvalue())])
    assert refused.refusal is not None and not refused.unforeseen
    assert refused.refusal.startswith("views: ") and "ContentSequence" in refused.refusal


def test_a_rescale_slope_of_two_values_is_refused_naming_it() -> None:
    """apply_modality_lut multiplied the pixels by a list: TypeError."""
    def two_slopes(ds: pydicom.Dataset) -> None:
        ds.RescaleSlope = ["1", "2"]

    refused = prepare_files("0123456789-rs", _study(two_slopes))
    assert refused.refusal is not None and not refused.unforeseen
    assert refused.refusal.startswith("display: ") and "RescaleSlope must be one number" in refused.refusal


def test_a_deidentification_attribute_of_another_vr_is_written_anew() -> None:
    """Setting DeidentificationMethodCodeSequence on an original element read as UL raised
    TypeError in pydicom's sequence validation."""
    from pipelines.deid import MemoryKeys, deidentify
    from tests.unit.dicom_builders import screening_exam

    ds = screening_exam()[0]
    ds.add_new("DeidentificationMethodCodeSequence", "UL", 255)
    ds.add_new("PatientIdentityRemoved", "US", 1)
    clean = deidentify(ds, MemoryKeys())
    assert clean["DeidentificationMethodCodeSequence"].VR == "SQ"
    assert clean.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    assert clean.PatientIdentityRemoved == "YES"


def test_a_codec_panic_is_a_refusal_naming_the_pixel_data() -> None:
    """pylibjpeg-rle panics on some RLE frames: pyo3's PanicException is a BaseException,
    which `except Exception` let through (in the decoder process, a crash of it)."""
    from pipelines.errors import InvalidStudy
    from pipelines.imaging.decode import decode
    from tests.unit.dicom_builders import screening_exam

    class Panic(BaseException):
        pass

    def panicking(_: object) -> np.ndarray:
        raise Panic("index out of bounds")

    with pytest.raises(InvalidStudy, match=r"PixelData cannot be decoded .*Panic: index out of bounds"):
        decode(screening_exam()[0], decoder=panicking)


def test_an_empty_rescale_slope_is_read_as_absent() -> None:
    """The display step rebuilt an empty RescaleSlope as None, and pydicom multiplied the
    pixels by it: TypeError."""
    def empty_slope(ds: pydicom.Dataset) -> None:
        ds.RescaleSlope = None

    prepared = prepare_files("0123456789-es", _study(empty_slope))
    assert prepared.refusal is None and prepared.exam is not None
