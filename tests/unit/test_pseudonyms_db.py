"""The pseudonym table and upserts, on both databases radflow supports (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from pipelines import db
from pipelines.pacs import pseudonyms
from pipelines.pacs.pseudonyms import lookup, pseudonym_for

STUDY_UID = "1.2.826.0.1.3680043.8.498.11223344556677889900"
OTHER_UID = "1.2.826.0.1.3680043.8.498.99887766554433221100"
PATIENT = "MRN-4411-2093"


def _reset(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for table in reversed(db.metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A results database with radflow's schema and no rows, on SQLite or PostgreSQL."""
    url = f"sqlite:///{tmp_path / 'results.db'}" if request.param == "sqlite" \
        else request.getfixturevalue("postgres_url")
    engine = db.engine_for(url)
    assert engine.dialect.name == request.param
    _reset(engine)
    yield url
    _reset(engine)
    engine.dispose()


def _pseudonym(url: str, kind: str, original: str) -> str:
    with db.engine_for(url).begin() as conn:
        return pseudonym_for(conn, kind, original)


def test_the_same_original_gets_the_same_pseudonym_on_every_call(database_url: str) -> None:
    first = _pseudonym(database_url, "study", STUDY_UID)
    again = _pseudonym(database_url, "study", STUDY_UID)
    # A new engine (as in the next night's run) reads it back from the table.
    db.engine_for(database_url).dispose()
    db.engine_for.cache_clear()
    later = _pseudonym(database_url, "study", STUDY_UID)
    assert first == again == later
    with db.engine_for(database_url).connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(db.pseudonyms)).scalar_one()
    assert count == 1


def test_different_originals_get_different_pseudonyms(database_url: str) -> None:
    uids = [f"{STUDY_UID}.{i}" for i in range(20)]
    names = [_pseudonym(database_url, "study", uid) for uid in uids]
    assert len(set(names)) == len(uids)


def test_pseudonyms_are_prefixed_by_kind_and_kinds_do_not_share_them(database_url: str) -> None:
    as_patient = _pseudonym(database_url, "patient", PATIENT)
    as_study = _pseudonym(database_url, "study", PATIENT)
    assert as_patient.startswith("pt-") and as_study.startswith("ex-")
    assert as_patient != as_study


def test_a_pseudonym_is_not_computed_from_the_original(database_url: str) -> None:
    first = _pseudonym(database_url, "study", STUDY_UID)
    _reset(db.engine_for(database_url))  # a fresh key table, e.g. another hospital
    second = _pseudonym(database_url, "study", STUDY_UID)
    assert first != second
    for name in (first, second):
        body = name.split("-", 1)[1]
        assert STUDY_UID not in name
        for algo in ("md5", "sha1", "sha256", "blake2b"):
            assert body not in hashlib.new(algo, STUDY_UID.encode()).hexdigest()


def test_the_pseudonym_stored_by_a_concurrent_writer_wins(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another run inserts the row between our lookup and our insert.
    with db.engine_for(database_url).begin() as conn:
        conn.execute(db.pseudonyms.insert().values(kind="study", original=STUDY_UID,
                                                   pseudonym="ex-otherwriter01"))
    calls = {"n": 0}
    real_lookup = pseudonyms.lookup

    def lookup_missing_once(conn: Any, kind: str, original: str) -> str | None:
        calls["n"] += 1
        return None if calls["n"] == 1 else real_lookup(conn, kind, original)

    monkeypatch.setattr(pseudonyms, "lookup", lookup_missing_once)
    assert _pseudonym(database_url, "study", STUDY_UID) == "ex-otherwriter01"
    with db.engine_for(database_url).connect() as conn:
        assert lookup(conn, "study", STUDY_UID) == "ex-otherwriter01"
        rows = conn.execute(sa.select(sa.func.count()).select_from(db.pseudonyms)).scalar_one()
    assert rows == 1


def test_an_identifier_the_key_table_cannot_hold_is_refused_without_echoing_it(
    postgres_url: str,
) -> None:
    db.engine_for(postgres_url)
    original = "MRN-" + "7" * 130 + "^^^ST-EXAMPLE-HOSPITAL&DOE^JANE"  # non-conformant PatientID
    with pytest.raises(Exception) as err:  # noqa: B017 - which error is the code's choice
        with db.engine_for(postgres_url).begin() as conn:
            pseudonym_for(conn, "patient", original)
    assert original not in str(err.value)
    assert "DOE^JANE" not in str(err.value)


def _image_row(exam: str, view: str, **changes: Any) -> dict[str, Any]:
    row = {
        "exam_id": exam, "view": view, "patient_id": "pt-0001", "instance_id": f"im-{exam}-{view}",
        "study_date": "2026-03-14", "laterality": view[0], "view_position": view.split("-")[1],
        "modality": "MG", "manufacturer": "SIEMENS", "rows": 120, "columns": 96,
        "bits_stored": 12, "pixel_spacing_mm": 0.085, "photometric": "MONOCHROME2",
        "patient_age": 55, "birads": 1, "label": 0, "image_path": f"/lake/{exam}/{view}.npy",
        "pixel_mean": 0.31, "ingest_seq": 7,
    }
    row.update(changes)
    return row


def _images(url: str) -> list[dict[str, Any]]:
    with db.engine_for(url).connect() as conn:
        rows = conn.execute(sa.select(db.images).order_by(db.images.c.exam_id, db.images.c.view))
        return [dict(r) for r in rows.mappings()]


def test_upsert_replaces_the_row_with_the_same_key_and_never_duplicates(database_url: str) -> None:
    rows = [_image_row("ex-a", "R-CC"), _image_row("ex-a", "L-CC")]
    with db.engine_for(database_url).begin() as conn:
        assert db.upsert(conn, db.images, rows, keys=["exam_id", "view"]) == 2
    relabelled = [_image_row("ex-a", "R-CC", birads=4, label=1, ingest_seq=9)]
    for _ in range(2):  # a retry of the same write adds nothing
        with db.engine_for(database_url).begin() as conn:
            db.upsert(conn, db.images, relabelled, keys=["exam_id", "view"])
    stored = _images(database_url)
    assert [(r["exam_id"], r["view"]) for r in stored] == [("ex-a", "L-CC"), ("ex-a", "R-CC")]
    by_view = {r["view"]: r for r in stored}
    assert (by_view["R-CC"]["birads"], by_view["R-CC"]["label"], by_view["R-CC"]["ingest_seq"]) \
        == (4, 1, 9)
    assert (by_view["L-CC"]["birads"], by_view["L-CC"]["label"]) == (1, 0)


def test_upsert_of_key_only_rows_keeps_existing_rows(database_url: str) -> None:
    with db.engine_for(database_url).begin() as conn:
        db.upsert(conn, db.ingest_state, [{"source": "http://pacs", "watermark": 5}], ["source"])
        db.upsert(conn, db.ingest_state, [{"source": "http://pacs", "watermark": 8}], ["source"])
        db.upsert(conn, db.quarantine, [{"stage": "ingest", "item_id": "o-1", "reason": "a"}],
                  ["stage", "item_id"])
        db.upsert(conn, db.quarantine, [{"stage": "ingest", "item_id": "o-1", "reason": "b"}],
                  ["stage", "item_id"])
    with db.engine_for(database_url).connect() as conn:
        state = conn.execute(sa.select(db.ingest_state.c.source, db.ingest_state.c.watermark)).all()
        held = conn.execute(sa.select(db.quarantine.c.item_id, db.quarantine.c.reason)).all()
    assert [tuple(r) for r in state] == [("http://pacs", 8)]
    assert [tuple(r) for r in held] == [("o-1", "b")]


def test_upsert_of_nothing_is_a_no_op(database_url: str) -> None:
    with db.engine_for(database_url).begin() as conn:
        assert db.upsert(conn, db.images, [], keys=["exam_id", "view"]) == 0
    assert _images(database_url) == []


def test_the_default_database_is_sqlite_in_the_state_dir(isolated_settings: Path) -> None:
    engine = db.get_engine()
    assert engine.dialect.name == "sqlite"
    assert Path(str(engine.url.database)) == isolated_settings.resolve() / "radflow.db"
    with engine.begin() as conn:
        name = pseudonym_for(conn, "patient", PATIENT)
    assert (isolated_settings / "radflow.db").exists()
    # The key table is in the database, not in the image lake.
    lake = isolated_settings / "lake"
    assert not lake.exists() or name not in "".join(p.name for p in lake.rglob("*"))
