"""`radflow labels import`: pathology outcomes and follow-up BI-RADS into table `outcomes`.

A pathology file (pipelines/labels/pathology.py: exam_id pseudonym, laterality, outcome,
date) or a RIS export of follow-up reports (pipelines/labels/ris.py: accession_number or
study_instance_uid, report_text, report_date; each row a later report about the exam the
key names) becomes one outcome per exam pseudonym and breast. Keys resolve to pseudonyms
through the pseudonym table (a StudyInstanceUID directly, an accession number through
Orthanc, pipelines/pacs/accessions.py); only exams radflow ingested or screened are taken,
and no identifier is stored.

Upserts by exam and breast, the outcome that ranks highest kept (pipelines/outcomes/truth.py):
importing a file twice, or an older file after a newer one, changes nothing. A bad row is
rejected with a reason naming its row and column, never its value, and the rest goes on.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from pipelines import db
from pipelines.domain import StageResult
from pipelines.errors import LabelFileInvalid
from pipelines.outcomes.truth import FOLLOW_UP, PATHOLOGY, BreastOutcome, outranks

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from pipelines.pacs.accessions import AccessionDirectory

_UID = re.compile(r"^\d+(?:\.\d+){3,}$")  # a DICOM UID; anything else in the key is an accession
UNKNOWN_EXAM = "names no exam radflow ingested or screened"


@dataclasses.dataclass(frozen=True)
class Rejected:
    """A row set aside: `reason` names the row and column, never the value."""

    row: int
    column: str
    reason: str


@dataclasses.dataclass(frozen=True)
class OutcomeImport(StageResult):
    """One imported file: breast outcomes stored (`inserted` new, `updated` outranked what was
    stored, `unchanged` already there or outranked by it) and the rows rejected."""

    source: str
    rows: int
    outcomes: int
    inserted: int
    updated: int
    unchanged: int
    rejected: list[Rejected]


def _existing(path: Path | str, what: str) -> Path:
    """`path`, checked to be a readable file.

    Raises:
        LabelFileInvalid: it is not.
    """
    if not Path(path).is_file():
        raise LabelFileInvalid(f"{what} {path} is not a readable file")
    return Path(path)


def _reject(row: int, column: str, why: str) -> Rejected:
    return Rejected(row, column, f"row {row}, column {column}: {why}")


def _exam_dates(conn: Connection, exam_ids: Iterable[str]) -> dict[str, str | None]:
    """{exam pseudonym: its earliest screened study date, or None} for the exams radflow knows."""
    wanted, out = sorted(set(exam_ids)), {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        known = conn.execute(sa.select(db.pseudonyms.c.pseudonym).where(
            db.pseudonyms.c.kind == "study", db.pseudonyms.c.pseudonym.in_(chunk))).scalars()
        out.update(dict.fromkeys((str(k) for k in known), None))
        dates = conn.execute(sa.select(db.exam_results.c.exam_id, sa.func.min(db.exam_results.c.study_date))
                             .where(db.exam_results.c.exam_id.in_(chunk))
                             .group_by(db.exam_results.c.exam_id)).all()
        out.update({str(e): str(d) for e, d in dates})
    return out


def _stored(conn: Connection, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], BreastOutcome]:
    t, exams, out = db.outcomes, sorted({k[0] for k in keys}), {}
    for start in range(0, len(exams), 500):
        for r in conn.execute(sa.select(t).where(t.c.exam_id.in_(exams[start:start + 500]))).mappings():
            out[(r["exam_id"], r["side"])] = BreastOutcome.from_row(r)
    return out


def store(conn: Connection, outcomes: Sequence[BreastOutcome]) -> tuple[int, int, int]:
    """Upsert `outcomes`, the highest-ranking one per breast winning; (inserted, updated,
    unchanged) counted per breast."""
    best: dict[tuple[str, str], BreastOutcome] = {}
    for o in outcomes:
        if o.key not in best or outranks(o, best[o.key]):
            best[o.key] = o
    stored = _stored(conn, list(best))
    fresh = [o for k, o in best.items() if k not in stored]
    better = [o for k, o in best.items() if k in stored and outranks(o, stored[k])]
    now = dt.datetime.now(dt.UTC)
    db.upsert(conn, db.outcomes, [{**dataclasses.asdict(o), "imported_at": now} for o in [*fresh, *better]],
              keys=["exam_id", "side"])
    return len(fresh), len(better), len(best) - len(fresh) - len(better)


def _finish(source: str, rows: int, accepted: list[tuple[int, BreastOutcome]],
            rejected: list[Rejected], dates: dict[str, str | None], conn: Connection) -> OutcomeImport:
    """Reject the outcomes of unknown exams or dated before their screening, store the rest."""
    kept = []
    date_column = "date" if source == PATHOLOGY else "report_date"
    for row, o in accepted:
        if o.exam_id not in dates:
            rejected.append(_reject(row, "exam_id" if source == PATHOLOGY else "key", UNKNOWN_EXAM))
            continue
        screened = dates[o.exam_id]
        if screened and o.outcome_date and (o.outcome_date < screened if source == PATHOLOGY
                                            else o.outcome_date <= screened):
            rejected.append(_reject(row, date_column, "is not after the exam's study date, so it is no "
                                                      "outcome of that exam"))
            continue
        kept.append(o)
    inserted, updated, unchanged = store(conn, kept)
    unique = sorted(set(rejected), key=lambda r: (r.row, r.column))
    return OutcomeImport(source=source, rows=rows, outcomes=len(kept), inserted=inserted, updated=updated,
                         unchanged=unchanged, rejected=unique)


def import_pathology(path: Path | str) -> OutcomeImport:
    """Store a pathology file's outcomes (a bilateral row gives both breasts).

    Raises:
        LabelFileInvalid: the file lacks a column (nothing is stored).
    """
    from pipelines.labels.pathology import read_pathology_rows
    from pipelines.locks import stage_lock

    read = read_pathology_rows(_existing(path, "pathology file"))
    rejected = [_reject(n, column, why) for n, column, why in read.rejected]
    accepted = [(n, BreastOutcome(o.exam_id, o.side, PATHOLOGY, malignant=o.malignant,
                                  outcome_date=o.date.isoformat())) for n, o in read.outcomes]
    rows = len({n for n, _ in read.outcomes} | {n for n, _, _ in read.rejected})
    with stage_lock("outcomes"), db.get_engine().begin() as conn:
        dates = _exam_dates(conn, (o.exam_id for _, o in accepted))
        return _finish(PATHOLOGY, rows, accepted, rejected, dates, conn)


def _report_date(digits: str) -> str | None:
    """The ISO date of a report date's digits ("20260501..."); None when undated.

    Raises:
        ValueError: digits that are no date.
    """
    if not digits:
        return None
    if len(digits) < 8:
        raise ValueError(digits)
    return dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:8])).isoformat()


def import_follow_up(path: Path | str, directory: AccessionDirectory | None = None) -> OutcomeImport:
    """Store the follow-up BI-RADS of a RIS export's reports (the latest report of a key
    decides, as an addendum would: pipelines/labels/ris.py).

    Args:
        path: the RIS CSV export.
        directory: resolves accession numbers (default: the gateway Orthanc, and the PACS
            when one is declared); not used when every key is a StudyInstanceUID.

    Raises:
        LabelFileInvalid: the file lacks the report text or every key column.
    """
    from pipelines.labels.ris import read_ris_export
    from pipelines.locks import stage_lock

    reports = read_ris_export(_existing(path, "RIS export"))
    keyless = "accession_number or study_instance_uid"
    rejected = [_reject(n, "report_text" if "report_text" in why else keyless, why)
                for n, why in reports.skipped]
    rows = len(reports.skipped) + sum(len(r) for r in reports.rows.values())
    with stage_lock("outcomes"), db.get_engine().begin() as conn:
        exam_of, failure = _exams_of(conn, list(reports.texts), directory)
        accepted = []
        for key, text in reports.texts.items():
            numbers = reports.rows.get(key, [0])
            found, why = _follow_up(key, text, reports.dates.get(key, ""), exam_of.get(key), failure)
            rejected += [_reject(n, *why) for n in numbers] if why else []
            accepted += [(numbers[-1], o) for o in found]
        dates = _exam_dates(conn, (o.exam_id for _, o in accepted))
        return _finish(FOLLOW_UP, rows, accepted, rejected, dates, conn)


def _follow_up(key: str, text: str, date_digits: str, exam_id: str | None,
               failure: str | None) -> tuple[list[BreastOutcome], tuple[str, str] | None]:
    """One key's outcomes, or the (column, why) of its rejection."""
    from pipelines.labels.birads import birads_by_side

    column = "study_instance_uid" if _UID.match(key) else "accession_number"
    try:
        date = _report_date(date_digits)
    except ValueError:
        return [], ("report_date", "is not a date (YYYY-MM-DD)")
    if exam_id is None:
        return [], (column, failure if failure and column == "accession_number" else UNKNOWN_EXAM)
    categories = birads_by_side(text)
    if not categories:
        return [], ("report_text", "states no BI-RADS category")
    return [BreastOutcome(exam_id, side, FOLLOW_UP, birads=category, outcome_date=date)
            for side, category in sorted(categories.items())], None


def _exams_of(conn: Connection, keys: Sequence[str],
              directory: AccessionDirectory | None) -> tuple[dict[str, str], str | None]:
    """{key: exam pseudonym} of the keys that resolve, and why accession numbers could not."""
    from pipelines.pacs.pseudonyms import lookup

    out = {k: e for k in keys if _UID.match(k) and (e := lookup(conn, "study", k))}
    accessions = [k for k in keys if not _UID.match(k)]
    if not accessions:
        return out, None
    from pipelines.config import get_settings
    from pipelines.pacs.accessions import exams_by_accession

    if directory is not None:
        found, failure = exams_by_accession(conn, accessions, directory, get_settings().pacs_aet)
        return {**out, **found}, failure
    from pipelines.pacs.client import OrthancClient

    with OrthancClient() as client:
        found, failure = exams_by_accession(conn, accessions, client, get_settings().pacs_aet)
    return {**out, **found}, failure
