"""The files of a fuzz case (tests/reliability/fuzz.py): its seed mutated, in its study.

`build` applies a case's mutations (dataset-level edits with pydicom accepting any value,
a transfer syntax re-encoded or only declared, byte-level edits of the encoded file);
`study_files` places the file in the synthetic exam of its case (`Corpus`).
"""

from __future__ import annotations

import contextlib
import copy
import io
import struct
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from tests.reliability.fuzz import LENGTH_TAGS, SYNTH_SCALE, ByteEdit, Case, Edit, corpus_roots

if TYPE_CHECKING:
    from pydicom import Dataset

# VRs whose value length takes 4 bytes (after 2 reserved) in explicit VR encoding
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


class Corpus:
    """Seeds as bytes, and the clean synthetic exams cases are placed in (built once)."""

    def __init__(self) -> None:
        self._roots = corpus_roots()
        self._exams: dict[str, dict[str, bytes]] = {}

    def exam(self, site: str) -> dict[str, bytes]:
        """The files of one small synthetic exam of `site`, by member."""
        if site not in self._exams:
            from pipelines.synth import iter_exams

            exam = next(iter_exams(1, "2025-03-01", site, 7, scale=SYNTH_SCALE))
            self._exams[site] = {i.name: _file_bytes(i.dataset) for i in exam.instances}
        return self._exams[site]

    def seed_bytes(self, seed: str) -> bytes:
        package, _, rest = seed.partition(":")
        if package == "synth":
            site, member = rest.split(":")
            return self.exam(site)[member]
        return (self._roots[package] / rest).read_bytes()


def _file_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


# What building a mutated file may meet: any exception of pydicom and its plugins, and the
# PanicException of a codec written in Rust (pyo3's, a BaseException). `except
# MUTATION_FAILURES as exc:` then `_interrupted(exc)` lets Ctrl-C and exits through.
MUTATION_FAILURES = BaseException


def _interrupted(exc: BaseException) -> None:
    if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):
        raise exc


@contextlib.contextmanager
def lenient_pydicom() -> Iterator[None]:
    """pydicom accepting any value while a mutated file is built (radflow then runs with
    pydicom's defaults again)."""
    from pydicom import config

    saved = config.settings.reading_validation_mode, config.settings.writing_validation_mode
    config.settings.reading_validation_mode = config.settings.writing_validation_mode = config.IGNORE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        config.settings.reading_validation_mode, config.settings.writing_validation_mode = saved


def build(case: Case, corpus: Corpus) -> tuple[bytes, list[str]]:
    """The mutated file's bytes, and the mutations that could not be applied (skipped)."""
    import pydicom

    skipped: list[str] = []
    raw = corpus.seed_bytes(case.seed)
    with lenient_pydicom():
        try:
            ds = pydicom.dcmread(io.BytesIO(raw), force=True)
            ds.get("PixelData")  # read errors of a seed show here, not in a mutation
        except MUTATION_FAILURES as exc:
            _interrupted(exc)
            return apply_bytes(raw, case.byte_edits), ["seed not readable: byte edits only"]
        _, slot = case.placed()
        if case.relabel and not case.seed.startswith("synth:"):
            relabel(ds, slot)
        for edit in case.edits:
            try:
                apply_edit(ds, edit)
            except MUTATION_FAILURES as exc:
                _interrupted(exc)
                skipped.append(f"{edit.kind} {edit.target}: {type(exc).__name__}")
        encoded, declared = _syntax(ds, case.syntax, skipped)
        try:
            blob = encode(encoded)
        except MUTATION_FAILURES as exc:
            _interrupted(exc)
            skipped.append(f"encoding the edited dataset: {type(exc).__name__}")
            blob = raw
        if declared is not None:
            blob = declare_syntax(blob, declared)
    return apply_bytes(blob, case.byte_edits), skipped


def relabel(ds: Dataset, slot: str) -> None:
    """Make a corpus file look like the study member it replaces."""
    if slot == "report":
        ds.Modality = "SR"
        return
    if slot == "extra":
        return
    side, position = slot.split("-")
    ds.Modality, ds.ImageLaterality, ds.ViewPosition = "MG", side, position
    ds.PresentationIntentType = "FOR PRESENTATION"
    if "ViewCodeSequence" in ds:
        del ds.ViewCodeSequence


def _syntax(ds: Dataset, syntax: str, skipped: list[str]) -> tuple[Dataset, str | None]:
    action, _, uid = syntax.partition(":")
    if action == "declare":
        return ds, uid
    if action != "encode":
        return ds, None
    try:
        return transcoded(ds, uid), None
    except MUTATION_FAILURES as exc:
        _interrupted(exc)
        skipped.append(f"encode {uid}: {type(exc).__name__}")
        return ds, None


def transcoded(ds: Dataset, uid: str) -> Dataset:
    """A copy of `ds` really encoded in transfer syntax `uid` (pydicom's encoders)."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import UID

    out = copy.deepcopy(ds)
    if getattr(out, "file_meta", None) is None:
        out.file_meta = FileMetaDataset()
    target = UID(uid)
    if target.is_compressed:
        out.compress(target)
        return out
    if target == "1.2.840.10008.1.2.2" and int(out.get("BitsAllocated", 8) or 8) == 16 \
            and "PixelData" in out and not out.file_meta.get("TransferSyntaxUID", UID("1.2")).is_compressed:
        import numpy as np

        even = out.PixelData[: len(out.PixelData) // 2 * 2]
        out.PixelData = np.frombuffer(even, "<u2").astype(">u2").tobytes()
    out.file_meta.TransferSyntaxUID = target
    return out


def encode(ds: Dataset) -> bytes:
    """The dataset as a DICOM file (Part 10 when it can be, else as pydicom writes it), in
    the encoding its file meta declares (pydicom's `save_as` keeps a read file's own)."""
    import pydicom

    if "PixelData" in ds:
        pixels = ds["PixelData"]
        if pixels.value is None:  # pydicom cannot write an empty one
            pixels.value = b""
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        compressed = getattr(syntax, "is_compressed", False)
        encapsulated = isinstance(pixels.value, bytes) and pixels.value.startswith(b"\xfe\xff\x00\xe0")
        if compressed and isinstance(pixels.value, bytes) and not encapsulated:
            from pydicom.encaps import encapsulate  # an edited codestream, as one fragment

            pixels.value = encapsulate([pixels.value + b"\x00" * (len(pixels.value) % 2) or b"\x00\x00"])
    implicit, little = _encoding(ds)
    for enforce in (True, False):
        buffer = io.BytesIO()
        try:
            pydicom.dcmwrite(buffer, ds, enforce_file_format=enforce, implicit_vr=implicit,
                             little_endian=little, force_encoding=True)
            return buffer.getvalue()
        except MUTATION_FAILURES as exc:
            _interrupted(exc)
            if not enforce:
                raise
    raise AssertionError("unreachable")


def declare_syntax(blob: bytes, uid: str) -> bytes:
    """`blob` with its file meta declaring transfer syntax `uid` (the data left as it is)."""
    at = blob.find(b"\x02\x00\x10\x00UI", 128, 2048)
    if at < 0:
        return blob
    old = struct.unpack_from("<H", blob, at + 6)[0]
    value = uid.encode("latin-1")
    value += b"\x00" * (len(value) % 2)
    out = blob[:at + 6] + struct.pack("<H", len(value)) + value + blob[at + 8 + old:]
    group = out.find(b"\x02\x00\x00\x00UL\x04\x00", 128, 256)
    if group >= 0:
        total = struct.unpack_from("<I", out, group + 8)[0] + len(value) - old
        out = out[:group + 8] + struct.pack("<I", total % 2**32) + out[group + 12:]
    return out


def _path(ds: Dataset, target: str) -> tuple[Dataset, str]:
    """The dataset holding `target`'s last keyword, sequences and items created on the way."""
    from pydicom import Dataset
    from pydicom.sequence import Sequence as DicomSequence

    *parents, keyword = target.split(".")
    here = ds
    for part in parents:
        name, _, index = part.partition("[")
        position = int(index.rstrip("]"))
        if name not in here or here[name].VR != "SQ":
            here.add_new(name, "SQ", DicomSequence())
        items = here[name].value
        while len(items) <= position:
            items.append(Dataset())
        here = items[position]
    return here, keyword


def _encoding(ds: Dataset) -> tuple[bool, bool]:
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is not None and syntax.is_transfer_syntax:
        return bool(syntax.is_implicit_VR), bool(syntax.is_little_endian)
    implicit, little = ds.original_encoding
    return bool(implicit), little is not False


def _raw(ds: Dataset, root: Dataset, keyword: str, vr: str, value: bytes) -> None:
    from pydicom.datadict import tag_for_keyword
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    tag = Tag(tag_for_keyword(keyword))
    if not vr:
        vr = str(ds[tag].VR).split(" or ")[0] if tag in ds else _own_vr(keyword)
    implicit, little = _encoding(root)
    ds[tag] = RawDataElement(tag, vr, len(value), value, 0, implicit, little)


_PACK = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d"}


def _own_vr(keyword: str) -> str:
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    return str(dictionary_VR(tag_for_keyword(keyword))).split(" or ")[0]


def _number(number: int, vr: str, little: bool) -> bytes:
    """`number` as a value of `vr`: packed binary (wrapped into the VR's range) or text."""
    code = _PACK.get(vr)
    if code is None:
        return str(number).encode()
    order = "<" if little else ">"
    if code in "fd":
        return struct.pack(order + code, float(number))
    bits = 8 * struct.calcsize(code)
    wrapped = number % 2**bits if code.isupper() else (number + 2**(bits - 1)) % 2**bits - 2**(bits - 1)
    return struct.pack(order + code, wrapped)


def apply_edit(ds: Dataset, edit: Edit) -> None:
    """Apply one dataset-level mutation to `ds` (in place)."""
    if edit.kind == "pixels":
        _pixels(ds, edit)
        return
    if edit.kind == "private":
        _private(ds, edit)
        return
    parent, keyword = _path(ds, edit.target)
    if edit.kind == "delete":
        if keyword in parent:
            del parent[keyword]
    elif edit.kind == "text":
        _raw(parent, ds, keyword, edit.vr, edit.value)
    elif edit.kind == "int":
        value = _number(edit.number, edit.vr or _own_vr(keyword), _encoding(ds)[1])
        _raw(parent, ds, keyword, edit.vr, value)
    elif edit.kind == "nest":
        parent.add_new(keyword, "SQ", _nested(edit.value, edit.number))


def _nested(value: bytes, depth: int) -> list[Dataset]:
    """A sequence `depth` items deep: each item holds `value` as a name, an id and a code."""
    from pydicom import Dataset

    if depth == 0:
        return [Dataset()]
    text = value.decode("latin-1")[:64]
    item = Dataset()
    item.PatientName = text
    item.PatientID = text
    item.CodeValue = text[:16]
    item.add_new("ContentSequence", "SQ", _nested(value, depth - 1))
    return [item]


def _private(ds: Dataset, edit: Edit) -> None:
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    group = int(edit.target, 16)
    ds.add_new(Tag(group, 0x0010), "LO", "RADFLOW FUZZ")
    if edit.vr == "SQ":
        ds.add_new(Tag(group, 0x1000), "SQ", _nested(edit.value, 2))
        return
    implicit, little = _encoding(ds)
    tag = Tag(group, 0x1001)
    ds[tag] = RawDataElement(tag, edit.vr, len(edit.value), edit.value, 0, implicit, little)


def _pixels(ds: Dataset, edit: Edit) -> None:
    data = bytes(ds.PixelData or b"") if "PixelData" in ds else b""
    mode, n = edit.target, edit.number
    if mode == "truncate":
        data = data[: len(data) * (n % 100) // 100]
    elif mode == "extend":
        data += edit.value * (1 + n % 64)
    elif mode == "random":
        data = (edit.value * (1 + (n % 40_000) // len(edit.value)))[: n % 40_000]
    elif mode == "empty":
        data = b""
    elif mode == "frames":
        frames = 1 + n % 4
        ds.NumberOfFrames = frames
        data *= frames
    elif mode == "odd":
        data += b"\x00"
    vr = "OB" if mode == "ob" else (ds["PixelData"].VR if "PixelData" in ds else "OW")
    _raw(ds, ds, "PixelData", vr if vr in ("OB", "OW") else "OB", data)


def apply_bytes(blob: bytes, edits: Sequence[ByteEdit]) -> bytes:
    """Apply the byte-level mutations in order."""
    out = bytearray(blob)
    for edit in edits:
        if edit.kind == "length":
            _length(out, edit)
            continue
        if not out:
            break
        end = len(out)
        if edit.target == "header":
            pixels = out.rfind(b"\xe0\x7f\x10\x00")
            end = pixels if pixels > 0 else end
        at = min(int(edit.where * end), len(out) - 1)
        if edit.kind == "flip":
            out[at] ^= 1 << edit.number
        elif edit.kind == "overwrite":
            out[at:at + len(edit.data)] = edit.data
        elif edit.kind == "insert":
            out[at:at] = edit.data
        elif edit.kind == "delete":
            del out[at:at + edit.number]
        elif edit.kind == "truncate":
            del out[at:]
    return bytes(out)


def _length(out: bytearray, edit: ByteEdit) -> None:
    """Rewrite the value length of the first element `edit.target` found in the file."""
    group, element = LENGTH_TAGS[edit.target]
    at = out.find(struct.pack("<HH", group, element), 128 if group == 2 else 132)
    if at < 0:
        return
    vr = bytes(out[at + 4:at + 6])
    if vr.isalpha() and vr.isupper():  # explicit VR
        if vr in _LONG_VRS:
            struct.pack_into("<I", out, at + 8, edit.number % 2**32)
        else:
            struct.pack_into("<H", out, at + 6, edit.number % 2**16)
    elif at + 8 <= len(out):  # implicit VR: a 4-byte length follows the tag
        struct.pack_into("<I", out, at + 4, edit.number % 2**32)


def study_files(case: Case, index: int, blob: bytes, corpus: Corpus) -> list[tuple[str, bytes]]:
    """The study of a case: its synthetic exam with the mutated file in its slot."""
    site, slot = case.placed()
    members: dict[str, bytes] = dict(corpus.exam(site))
    if slot == "extra":
        members["extra"] = blob
    else:
        members[slot] = blob
    return [(f"fuzz{index:06d}-{name}", data) for name, data in members.items()]
