"""The gateway's rules without services: which nodes may store, where results go, what a
delivery row keeps, when retention may delete. The behaviour against a real PACS, RIS and
gateway is in tests/integration/test_hospital_pacs.py."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa

from pipelines import config, db
from pipelines.config import RadflowSettings
from pipelines.errors import PermanentError, StackError
from pipelines.gateway import deliver, purge, retrieve
from pipelines.gateway.night import NightExam
from pipelines.gateway.sending import Context, Outcome
from pipelines.stack import orthanc

EXAM = NightExam(exam_id="ex-0001", study_date="2026-11-02", model_version="3", model_name="m",
                 score=0.7, suspicion=8, flagged=True, view_scores={"R-CC": 0.7}, discounted={})


def test_only_the_declared_pacs_and_listed_aes_may_store_into_the_gateway() -> None:
    plain = orthanc.modalities(RadflowSettings())
    assert set(plain) == {"radflow"}
    declared = orthanc.modalities(RadflowSettings(
        pacs_aet="HOSPITALPACS", pacs_host="10.0.0.5", pacs_port=11112,
        gateway_store_aets="MAMMO1@10.0.0.7:104, CT2@10.0.0.8:4242"))
    assert declared["pacs"] == {"AET": "HOSPITALPACS", "Host": "10.0.0.5", "Port": 11112, "AllowEcho": True,
                                "AllowStore": True, "AllowFind": False, "AllowMove": False, "AllowGet": False}
    assert [(m["AET"], m["Host"], m["Port"]) for k, m in declared.items() if k.startswith("store-")] == \
        [("MAMMO1", "10.0.0.7", 104), ("CT2", "10.0.0.8", 4242)]


@pytest.mark.parametrize("entry", ["MAMMO1", "MAMMO1@host", "@10.0.0.7:104", "A_VERY_LONG_AE_TITLE@h:1"])
def test_a_malformed_store_entry_is_refused_by_name(entry: str) -> None:
    with pytest.raises(StackError, match="RADFLOW_GATEWAY_STORE_AETS entry"):
        orthanc.parse_store_aets(entry)


@pytest.mark.parametrize(("settings", "expected"), [
    ({}, []),
    ({"pacs_aet": "PACS"}, ["pacs"]),
    ({"pacs_aet": "PACS", "pacs_deliver": False}, []),
    ({"pacs_aet": "PACS", "ris_mllp_host": "ris", "ris_fhir_url": "http://fhir"},
     ["pacs", "ris-hl7", "ris-fhir"]),
    ({"ris_fhir_url": "http://fhir"}, ["ris-fhir"]),
])
def test_results_go_to_the_configured_destinations(settings: dict[str, Any], expected: list[str]) -> None:
    assert deliver.destinations(RadflowSettings(**settings)) == expected


def test_without_pull_mode_retrieve_asks_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    assert retrieve.run("2026-11-02").mode == "none"
    monkeypatch.setenv("RADFLOW_PACS_AET", "PACS")
    config.reset_settings()
    assert retrieve.run("2026-11-02").mode == "push"  # the PACS routes: no C-FIND, no Orthanc call


def test_retention_without_a_pacs_to_deliver_to_deletes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    assert purge.run("2026-11-10").retention_days is None  # unset: keep everything
    monkeypatch.setenv("RADFLOW_GATEWAY_RETENTION_DAYS", "2")
    config.reset_settings()
    with pytest.raises(PermanentError, match="no PACS receives the results"):
        purge.run("2026-11-10")


def _context(previous: dict[str, Any] | None) -> Context:
    return Context(client=None, settings=RadflowSettings(), task="mammo", exam=EXAM,  # type: ignore[arg-type]
                   study_id="orthanc-id", previous=previous)


def test_a_destination_is_sent_again_only_when_its_content_changed() -> None:
    sent = {"status": "sent", "content": {"message_id": "A"}, "sent_at": dt.datetime.now(dt.UTC)}
    assert _context(sent).already_sent("message_id", "A")
    assert not _context(sent).already_sent("message_id", "B")
    assert not _context({**sent, "status": "failed"}).already_sent("message_id", "A")
    assert _context(sent).sent_before() and not _context(None).sent_before()


def _row() -> dict[str, Any]:
    with db.get_engine().connect() as conn:
        return dict(conn.execute(sa.select(db.deliveries)).mappings().one())


def test_a_failed_send_keeps_what_the_destination_already_holds() -> None:
    first = Outcome({"instances": {"1.2.3": ["sr", "1.2"]}}, [], sent=True)
    deliver._record(_context(None), "pacs", 1, first, None)
    held = _row()
    assert (held["status"], held["attempts"], held["content"]) == ("sent", 1, first.content)
    deliver._record(_context(held), "pacs", 3, None, "Orthanc at http://gw did not answer")
    failed = _row()
    assert (failed["status"], failed["attempts"], failed["error"]) == \
        ("failed", 4, "Orthanc at http://gw did not answer")
    assert failed["content"] == first.content  # still what the PACS holds: the rerun rejects it
    again = Outcome({"instances": {"1.2.4": ["sr", "1.3"]}}, ["1.2.3"], sent=True)
    deliver._record(_context(failed), "pacs", 1, again, None)
    done = _row()
    assert (done["status"], done["attempts"], done["error"]) == ("sent", 5, None)
    assert done["superseded"] == ["1.2.3"] and done["content"] == again.content


def test_retention_keeps_a_study_until_it_is_ingested_screened_and_delivered() -> None:
    targets = ["pacs", "ris-hl7"]
    now = dt.datetime.now(dt.UTC)
    with db.get_engine().begin() as conn:
        def why() -> str | None:
            return purge._why_kept(conn, EXAM.exam_id, "orthanc-id", "mammo", targets)

        assert purge._why_kept(conn, None, "orthanc-id", None, targets) == "no task takes its modality"
        assert why() == "not ingested"
        conn.execute(sa.insert(db.quarantine).values(stage="ingest", item_id="orthanc-id",
                                                     reason="no report"))
        assert why() == "not screened"
        conn.execute(sa.insert(db.exam_results).values(
            exam_id=EXAM.exam_id, model_version="3", study_date=EXAM.study_date, score=0.7, flagged=True,
            views_scored=4, view_scores={}, task="mammo"))
        assert why() == "results not delivered"
        common = {"exam_id": EXAM.exam_id, "task": "mammo", "study_date": EXAM.study_date, "attempts": 1,
                  "content": {}, "superseded": [], "updated_at": now}
        conn.execute(sa.insert(db.deliveries).values(destination="pacs", model_version="3", status="sent",
                                                     **common))
        conn.execute(sa.insert(db.deliveries).values(destination="ris-hl7", model_version="2", status="sent",
                                                     **common))
        assert why() == "results not delivered"  # the RIS has an older version's result
        conn.execute(sa.update(db.deliveries).where(db.deliveries.c.destination == "ris-hl7")
                     .values(model_version="3", status="failed"))
        assert why() == "results not delivered"
        conn.execute(sa.update(db.deliveries).values(status="sent"))
        assert why() is None


def test_a_purged_study_delivered_before_is_unchanged_on_a_rerun_of_its_night() -> None:
    sent = {"status": "sent", "model_version": EXAM.model_version, "content": {"message_id": "A"}}
    purged = dataclasses.replace(_context(sent), study_id="")
    attempts, outcome, error = deliver._deliver_one(purged, "ris-hl7")
    assert (attempts, error) == (0, None) and outcome is not None and not outcome.sent
    assert outcome.content == {"message_id": "A"}
    older = dataclasses.replace(purged, previous={**sent, "model_version": "2"})
    assert deliver._deliver_one(older, "ris-hl7") == (0, None, "the gateway no longer holds the study")
