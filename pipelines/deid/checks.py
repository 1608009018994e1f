"""Last-line checks at the ingest boundary: burned-in text and surviving identifiers.

Declared burned-in rule: an image whose BurnedInAnnotation is "YES" is quarantined, never
masked (the header says text is there, so a detector that finds less cannot be trusted).
A missing or "NO" value passes this check; the pixels are then searched for text
(pipelines/imaging/burned_in.py), which is quarantined or masked by the
`burned_in_text` setting.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from pipelines.deid import profile as p
from pipelines.deid.deidentify import DUMMY_TEXT, METHOD_TEXT
from pipelines.errors import PhiDetected

if TYPE_CHECKING:
    from pydicom import Dataset
    from pydicom.dataelem import DataElement

MIN_SUBSTRING = 4  # shorter originals are matched only as whole values
# PatientID, OtherPatientIDs, PatientBirthDate, AccessionNumber.
STRONG_TAGS = frozenset({0x00100020, 0x00101000, 0x00100030, 0x00080050})
# Values de-identification writes itself: an original holding them is no leak.
WRITTEN_BY_DEIDENTIFY = frozenset(
    {DUMMY_TEXT, *METHOD_TEXT, *(c[1] for c in (p.BASIC_PROFILE_CODE, p.MODIFIED_DATES_CODE,
                                              p.PATIENT_CHARACTERISTICS_CODE, p.CLEAN_PIXEL_CODE))}
)
_TEXT_VRS = frozenset(
    {"AE", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "UC", "UI", "UR", "UT", "UN"}
)


def burned_in_annotation(ds: Dataset) -> str | None:
    """Why the image must be quarantined for burned-in text, or None if it may pass."""
    value = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    if value == "YES":
        return ("BurnedInAnnotation is YES: text burned into the pixels may identify the "
                "patient (radflow quarantines such images, it does not mask them)")
    return None


def original_identifiers(ds: Dataset) -> set[str]:
    """The identifying strings of an original dataset, for `check_no_phi`.

    Strong identifiers (full person names, patient ids, the birth date, the accession
    number, every UID the profile replaces) are included unless an attribute the profile
    keeps holds exactly the same value (an Instance Creator UID equal to the
    Implementation Class UID). Weak ones (name components, other values the profile
    removes, empties or replaces, private values, values inside removed sequences) are
    included unless they occur as a whole word in a kept attribute ("GE MEDICAL SYSTEMS"
    as InstitutionName and in Manufacturer identifies nobody). Times are left out (the
    Modified Dates option keeps them), and so are values shorter than MIN_SUBSTRING
    characters, which would match unrelated values.
    """
    found = _Found()
    for dataset in (ds, getattr(ds, "file_meta", None)):
        if dataset is not None:
            _collect(dataset, found, inside_removed=False)
    kept = {k.strip().lower() for k in found.kept} | {w.lower() for w in WRITTEN_BY_DEIDENTIFY}
    kept_words = _matcher(found.weak)
    weak_kept = {m.group(0) for k in kept for m in kept_words.finditer(k)} if found.weak else set()
    strong = {v for v in found.strong if v.strip().lower() not in kept}
    weak = {v for v in found.weak if v.strip().lower() not in weak_kept}
    return {s for s in (v.strip() for v in strong | weak) if len(s) >= MIN_SUBSTRING}


@dataclasses.dataclass
class _Found:
    strong: set[str] = dataclasses.field(default_factory=set)
    weak: set[str] = dataclasses.field(default_factory=set)
    kept: set[str] = dataclasses.field(default_factory=set)


def _collect(ds: Dataset, found: _Found, inside_removed: bool) -> None:
    for tag in ds.keys():
        elem = ds[tag]
        op = p.operation(int(tag), elem.VR)
        if elem.VR == "SQ":
            removed = inside_removed or tag.is_private or op in (p.REMOVE, p.EMPTY, p.DUMMY)
            for item in elem.value:
                _collect(item, found, removed)
            continue
        texts = _texts(elem)
        if elem.VR == "PN":
            found.strong.update(texts)
            found.weak.update(part for text in texts for part in _name_parts(text))
        elif int(tag) in STRONG_TAGS or op == p.NEW_UID:
            found.strong.update(texts)
        elif elem.VR not in _TEXT_VRS and not tag.is_private:
            if op == p.KEEP and not inside_removed:
                found.kept.update(texts)
        elif tag.is_private or op != p.KEEP or inside_removed:
            found.weak.update(texts)
        else:
            found.kept.update(texts)


def check_no_phi(ds: Dataset, originals: Iterable[str]) -> None:
    """Raise if any original identifier survives anywhere in `ds`.

    Every element is searched, at any depth, private and file meta included; byte values
    are read as Latin-1 text, pixel data excepted. Originals of MIN_SUBSTRING characters
    or more are found as whole words inside longer values ("mrn123" in "id: MRN123;",
    not in "XMRN1234"), case-insensitive; shorter ones only as a whole value.

    Raises:
        PhiDetected: naming the attribute path where an original survives, never the value.
    """
    needles = {o.strip().lower() for o in originals if o and o.strip()}
    long = _matcher(n for n in needles if len(n) >= MIN_SUBSTRING)
    short = {n for n in needles if len(n) < MIN_SUBSTRING}
    datasets = [("", ds)]
    if getattr(ds, "file_meta", None) is not None:
        datasets.append(("file meta ", ds.file_meta))
    for prefix, dataset in datasets:
        for path, elem in _paths(dataset, ""):
            for text in _texts(elem):
                lowered = text.lower()
                if lowered.strip() in short or long.search(lowered):
                    raise PhiDetected(f"an original identifier survives in {prefix}{path}")


def _paths(ds: Dataset, prefix: str) -> Iterator[tuple[str, DataElement]]:
    """(path, element) of every element, items of sequences included, depth first."""
    for tag in sorted(ds.keys()):
        elem = ds[tag]
        name = elem.keyword or f"({tag.group:04X},{tag.element:04X})"
        path = f"{prefix}{name}"
        yield path, elem
        if elem.VR == "SQ":
            for index, item in enumerate(elem.value):
                yield from _paths(item, f"{path}[{index}].")


def _texts(elem: DataElement) -> list[str]:
    if elem.VR == "SQ" or elem.tag >> 16 == 0x7FE0:  # pixel data: see burned_in_annotation
        return []
    value = elem.value
    if value is None:
        return []
    if isinstance(value, bytes | bytearray):
        return [bytes(value).decode("latin-1")]
    if elem.VM > 1:
        parts = [str(v) for v in value]
        return [*parts, "\\".join(parts)]
    return [str(value)]


def _name_parts(name: str) -> list[str]:
    """The family, given and middle names of a person name ("DOE^JANE^A" -> ...)."""
    return [part for group in name.split("=") for part in group.split("^")]


def _matcher(needles: Iterable[str]) -> re.Pattern[str]:
    """A pattern finding any needle as a whole word: not inside a longer word, number or
    UID ("1.2.3" is not in "1.2.3.4", "mrn12" is in "id mrn12.")."""
    alternatives = sorted({n.strip().lower() for n in needles if n.strip()}, key=len, reverse=True)
    body = "|".join(re.escape(a) for a in alternatives) or "(?!)"
    return re.compile(f"(?<![0-9a-z])(?<![0-9]\\.)(?:{body})(?![0-9a-z]|\\.[0-9])")
