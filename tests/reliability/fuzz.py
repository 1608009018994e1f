"""The DICOM boundary fuzzer (issue 18, item 7): hypothesis strategies of mutated files.

A `Case` is one mutated DICOM file in one study. Its seed is a file of the corpora radflow
is tested on (pydicom's test files, pydicom-data, deid-data) or one member of a small
`radflow synth` exam (a view or the SR report); the mutations are drawn by hypothesis:

- dataset-level `Edit`s: attributes deleted, given other values, other VRs and odd value
  lengths (raw bytes written as they are), sequences nested or emptied, private elements
  with identifying-looking values, pixel data cut, padded, replaced or multiplied;
- a transfer syntax: the file re-encoded (implicit, big endian, deflated, RLE, JPEG-LS,
  JPEG 2000) or only declared (file meta saying one thing, the data another);
- byte-level `ByteEdit`s of the encoded file: bits flipped, bytes overwritten, inserted,
  deleted, the file cut short, and value lengths of chosen elements rewritten.

The mutated file takes its `slot` in the study: one of the four screening views or the
report of a synthetic exam, whose other files are clean (so that the study reaches every
step of ingest), or an extra file beside them. A corpus seed is `relabel`led as the slot
(Modality, laterality, view) on request, so that its pixel data reaches the decoders.
tests/reliability/fuzz_files.py turns a case into the study's files, and
tests/reliability/fuzz_runner.py runs them through ingest in worker processes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

# Hologic MONOCHROME2 14 bit, GE MONOCHROME1 SIGMOID, Siemens 12 bit
SYNTH_SITES = ("general", "north", "east")
SYNTH_MEMBERS = ("R-CC", "L-CC", "R-MLO", "L-MLO", "report")
SLOTS = (*SYNTH_MEMBERS, "extra")
SYNTH_SCALE = 0.03  # about 120 x 100 pixels: the pipeline's every step at a small cost
MAX_FILE_BYTES = 1_200_000  # corpus files up to this size (most of them)
SKIP_SUFFIXES = {".py", ".pyc", ".zip", ".json", ".txt", ".md", ".gz", ".bz2", ".xz"}

# Attributes a step of ingest reads, identifiers de-identification must handle, and some
# structure; "Seq[i].Keyword" reaches into a sequence item (created when missing).
TARGETS = (
    "Modality", "Manufacturer", "ImageLaterality", "Laterality", "ViewPosition", "ViewCodeSequence",
    "ViewCodeSequence[0].CodeValue", "ViewCodeSequence[0].ViewModifierCodeSequence",
    "ViewModifierCodeSequence", "PresentationIntentType", "AcquisitionDateTime", "AcquisitionDate",
    "AcquisitionTime", "ContentTime", "InstanceNumber", "BodyPartExamined", "PatientID",
    "PatientName", "PatientAge", "PatientBirthDate", "PatientSex", "AccessionNumber",
    "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID", "StudyDate",
    "StudyTime", "BurnedInAnnotation", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit",
    "PixelRepresentation", "SamplesPerPixel", "PhotometricInterpretation", "PlanarConfiguration",
    "NumberOfFrames", "PixelSpacing", "ImagerPixelSpacing", "WindowCenter", "WindowWidth",
    "VOILUTFunction", "VOILUTSequence", "VOILUTSequence[0].LUTDescriptor", "VOILUTSequence[0].LUTData",
    "ModalityLUTSequence[0].LUTDescriptor", "ModalityLUTSequence[0].LUTData", "RescaleSlope",
    "RescaleIntercept", "PatientOrientation", "FieldOfViewHorizontalFlip", "PixelData",
    "ContentSequence", "ContentSequence[0].ContentSequence[0].TextValue",
    "ContentSequence[0].ContentSequence[0].ValueType", "ContentSequence[0].ValueType", "ValueType",
    "OtherPatientIDsSequence[0].PatientID", "RequestAttributesSequence[0].AccessionNumber",
    "ReferencedStudySequence[0].ReferencedSOPInstanceUID", "InstitutionName",
    "ReferringPhysicianName", "OperatorsName", "ImageComments", "StudyDescription",
    "SpecificCharacterSet", "PatientIdentityRemoved", "DeidentificationMethod", "ExtendedOffsetTable",
    "FloatPixelData", "ContributingEquipmentSequence[0].InstitutionName",
    "AnatomicRegionSequence[0].CodeValue",
)
SEQUENCES = ("ViewCodeSequence", "ContentSequence", "VOILUTSequence", "ModalityLUTSequence",
             "OtherPatientIDsSequence", "RequestAttributesSequence", "ReferencedStudySequence",
             "ViewModifierCodeSequence", "AnatomicRegionSequence", "PatientName", "Rows")
VRS = ("AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF",
       "OL", "OW", "OV", "PN", "SH", "SL", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN", "UR",
       "US", "UT", "UV")
TEXTS = (
    "", " ", "\\", "\\\\\\", "\x00", "MG", "CT", "SR", "DX", "R", "L", "B", "U", "CC", "MLO", "XCCL",
    "FOR PROCESSING", "FOR PRESENTATION", "YES", "NO", "MONOCHROME1", "MONOCHROME2", "RGB",
    "YBR_FULL_422", "PALETTE COLOR", "0", "-1", "1e400", "NaN", "-inf", "65536", "2.5", "1\\2\\3",
    "0\\0", "P\\L", "A\\FR", "999Y", "abcY", "20261301", "19000101", "99991231", "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.90", "1.2.3", "1..2", "radflow", "SIGMOID", "LINEAR_EXACT", "BREAST",
    "CHEST", "TEXT", "CONTAINER", "BI-RADS 5", "ISO_IR 192", "ISO_IR 100", "ISO 2022 IR 87",
    "GB18030", "ISO_IR 999", "\xe9l\xe8ve", "\u30de\u30f3\u30e2", "DOE^JANE^Q=\u5c71\u7530^\u82b1\u5b50",
)
INTS = (0, 1, 2, 3, 7, 8, 9, 11, 12, 15, 16, 17, 24, 31, 32, 33, 63, 64, 255, 256, 4095, 4096,
        32767, 32768, 65535, 65536, -1, -32768, 2**31 - 1, 2**32 - 1)
PIXEL_MODES = ("truncate", "extend", "random", "empty", "frames", "odd", "ob")
# Transfer syntaxes a seed is re-encoded in (pydicom's writers and encoders) or declared as.
ENCODE = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99",
          "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90")
DECLARE = (*ENCODE, "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51",
           "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.81",
           "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.100",
           "1.2.840.10008.1.2.4.999", "1.2.3", "", "not a uid")
# Elements whose encoded value length `ByteEdit("length")` rewrites, by (group, element).
LENGTH_TAGS = {
    "TransferSyntaxUID": (0x0002, 0x0010), "FileMetaInformationGroupLength": (0x0002, 0x0000),
    "PatientName": (0x0010, 0x0010), "PatientID": (0x0010, 0x0020), "StudyInstanceUID": (0x0020, 0x000D),
    "SOPInstanceUID": (0x0008, 0x0018), "Modality": (0x0008, 0x0060), "ImageLaterality": (0x0020, 0x0062),
    "ViewPosition": (0x0018, 0x5101), "ViewCodeSequence": (0x0054, 0x0220), "Rows": (0x0028, 0x0010),
    "Columns": (0x0028, 0x0011), "BitsStored": (0x0028, 0x0101), "WindowCenter": (0x0028, 0x1050),
    "PhotometricInterpretation": (0x0028, 0x0004), "ContentSequence": (0x0040, 0xA730),
    "RequestAttributesSequence": (0x0040, 0x0275), "PixelData": (0x7FE0, 0x0010),
}
LENGTHS = (0, 1, 2, 3, 7, 0xFF, 0xFFFE, 0xFFFF, 0x10000, 0x7FFFFFFF, 0xFFFFFFFE, 0xFFFFFFFF)


@dataclasses.dataclass(frozen=True)
class Edit:
    """One dataset-level mutation: `kind` "delete", "text" (raw bytes as `vr`, "" = the
    attribute's own VR), "int" (`number` packed for `vr`), "nest" (a sequence `number`
    items deep holding `value` as names and codes), "private" (a private element of group
    `target`) or "pixels" (mode `target` of PIXEL_MODES)."""

    kind: str
    target: str
    vr: str = ""
    value: bytes = b""
    number: int = 0


@dataclasses.dataclass(frozen=True)
class ByteEdit:
    """One byte-level mutation of the encoded file: "flip" (bit `number`), "overwrite",
    "insert" (`data`), "delete" (`number` bytes), "truncate", at `where` (0-1) of the
    header (`target` "header", before the pixel data) or of the whole file; or "length":
    the value length of element `target` (LENGTH_TAGS) set to `number`."""

    kind: str
    where: float = 0.0
    target: str = ""
    data: bytes = b""
    number: int = 0


@dataclasses.dataclass(frozen=True)
class Case:
    """One mutated file (`seed` mutated) in the study of synthetic site `site`, as `slot`."""

    seed: str
    site: str
    slot: str
    relabel: bool
    syntax: str  # "", "encode:<uid>" or "declare:<uid>"
    edits: tuple[Edit, ...]
    byte_edits: tuple[ByteEdit, ...]

    def placed(self) -> tuple[str, str]:
        """(site, slot): a synthetic seed stays in its own exam, as its own member."""
        if self.seed.startswith("synth:"):
            _, site, member = self.seed.split(":")
            return site, member
        return self.site, self.slot


# ----------------------------------------------------------------------------- the corpus

def corpus_roots() -> dict[str, Path]:
    """The folders of test files each package ships (found on disk: pydicom's own lookup
    would try to download missing ones)."""
    import data_store  # pydicom-data
    import deid_data
    import pydicom.data

    return {"pydicom": Path(pydicom.data.__file__).parent / "test_files",
            "pydicom-data": Path(data_store.__file__).parent / "data",
            "deid-data": Path(deid_data.__file__).parent / "data"}


def corpus_seeds() -> list[str]:
    """Every seed, in a stable order: "synth:<site>:<member>", then "<package>:<path>"."""
    seeds = [f"synth:{site}:{member}" for site in SYNTH_SITES for member in SYNTH_MEMBERS]
    for package, root in corpus_roots().items():
        seeds += [f"{package}:{p.relative_to(root).as_posix()}" for p in sorted(root.rglob("*"))
                  if p.is_file() and p.suffix not in SKIP_SUFFIXES and p.stat().st_size <= MAX_FILE_BYTES]
    return seeds


# ----------------------------------------------------------------------------- strategies

def _values() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.sampled_from(TEXTS).map(lambda t: t.encode("utf-8")),
        st.text(max_size=24).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.binary(max_size=24),
        st.integers(0, 2**32 - 1).map(lambda n: f"PHI{n:08X}".encode()),  # identifying-looking
        st.integers(65, 3000).map(lambda n: b"A" * n),
    )


def edits() -> st.SearchStrategy[Edit]:
    targets = st.sampled_from(TARGETS)
    own_or_any_vr = st.one_of(st.just(""), st.sampled_from(VRS))
    return st.one_of(
        st.builds(Edit, kind=st.just("delete"), target=targets),
        st.builds(Edit, kind=st.just("text"), target=targets, vr=own_or_any_vr, value=_values()),
        st.builds(Edit, kind=st.just("int"), target=targets,
                  vr=st.sampled_from(("", "US", "SS", "UL", "SL", "FL", "FD", "IS", "DS")),
                  number=st.one_of(st.sampled_from(INTS), st.integers(-2**31, 2**32 - 1))),
        st.builds(Edit, kind=st.just("nest"), target=st.one_of(st.sampled_from(SEQUENCES), targets),
                  value=_values(), number=st.integers(0, 4)),
        st.builds(Edit, kind=st.just("private"), target=st.sampled_from(("0009", "0011", "0029", "7FE1")),
                  vr=st.sampled_from(("LO", "UN", "SQ", "PN", "OB", "UT")), value=_values()),
        st.builds(Edit, kind=st.just("pixels"), target=st.sampled_from(PIXEL_MODES),
                  value=st.binary(min_size=1, max_size=32), number=st.integers(0, 2**20)),
    )


def byte_edits() -> st.SearchStrategy[ByteEdit]:
    where = st.floats(0, 1, exclude_max=True, allow_nan=False)
    region = st.sampled_from(("header", "file"))
    return st.one_of(
        st.builds(ByteEdit, kind=st.just("flip"), where=where, target=region, number=st.integers(0, 7)),
        st.builds(ByteEdit, kind=st.sampled_from(("overwrite", "insert")), where=where, target=region,
                  data=st.binary(min_size=1, max_size=16)),
        st.builds(ByteEdit, kind=st.just("delete"), where=where, target=region, number=st.integers(1, 64)),
        st.builds(ByteEdit, kind=st.just("truncate"), where=where, target=region),
        st.builds(ByteEdit, kind=st.just("length"), target=st.sampled_from(sorted(LENGTH_TAGS)),
                  number=st.one_of(st.sampled_from(LENGTHS), st.integers(0, 2**32 - 1))),
    )


def cases(seeds: Sequence[str]) -> st.SearchStrategy[Case]:
    """Cases over `seeds` (half synthetic exam members, half corpus files)."""
    synthetic = [s for s in seeds if s.startswith("synth:")]
    files = [s for s in seeds if not s.startswith("synth:")]
    syntax = st.one_of(st.just(""), st.sampled_from(ENCODE).map(lambda u: f"encode:{u}"),
                       st.sampled_from(DECLARE).map(lambda u: f"declare:{u}"))
    return st.builds(
        Case, seed=st.one_of(st.sampled_from(synthetic), st.sampled_from(files)),
        site=st.sampled_from(SYNTH_SITES), slot=st.sampled_from(SLOTS), relabel=st.booleans(),
        syntax=syntax, edits=st.lists(edits(), max_size=6).map(tuple),
        byte_edits=st.lists(byte_edits(), max_size=3).map(tuple),
    )


def plain_cases(seeds: Sequence[str]) -> list[Case]:
    """Every corpus file as it is: an extra file of a clean study, and relabelled as its
    R-CC view (so that its pixel data reaches the decoders), as tests/integration/
    test_bad_input.py sends them to Orthanc."""
    files = [s for s in seeds if not s.startswith("synth:")]
    return [Case(seed, "general", slot, relabel, "", (), ()) for seed in files
            for slot, relabel in (("extra", False), ("R-CC", True))]


# Cases drawn per hypothesis run: one long run is not the same list in every process (seen
# at 5,000), runs of a few hundred are.
BATCH = 250


def generate(count: int, seed: int, seeds: Sequence[str]) -> list[Case]:
    """`count` distinct cases drawn by hypothesis from `seed` (the same list on every run).

    Drawn in runs of BATCH cases, run k seeded `seed + k`; hypothesis may draw an example
    more than once, and a repeat is left out.
    """
    found: dict[Case, None] = {}
    run = 0
    while len(found) < count:  # whole runs: a short one would draw its simplest cases only
        for case in _drawn(BATCH, seed + run, seeds):
            if len(found) < count:
                found.setdefault(case)
        run += 1
    return list(found)


def _drawn(count: int, seed: int, seeds: Sequence[str]) -> list[Case]:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as fixed_seed

    drawn: list[Case] = []

    @settings(max_examples=count, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @fixed_seed(seed)
    @given(case=cases(seeds))
    def collect(case: Case) -> None:
        drawn.append(case)

    collect()
    return drawn


def describe(case: Case) -> dict[str, Any]:
    """The case as JSON-ready data (a reproducer's description)."""
    return dataclasses.asdict(case) | {
        "edits": [dataclasses.asdict(e) | {"value": e.value.hex()} for e in case.edits],
        "byte_edits": [dataclasses.asdict(e) | {"data": e.data.hex()} for e in case.byte_edits],
    }
