"""radflow inside the hospital: a second Orthanc is the hospital PACS (its own storage, AE
title and ports), an MLLP listener and a FHIR receiver are the RIS.

Pull (C-FIND, C-MOVE through the gateway's REST API, a night the PACS cannot send listed
on the worklist), push (only declared AEs may store), delivery of the results to the
PACS and the RIS with a rerun that sends nothing and a changed result that replaces
(one current SR per exam in the PACS), a PACS down during delivery (recorded, retried),
and retention over ten nights (the gateway stays bounded, the PACS keeps everything).
The tests run in file order and build on each other.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest

from pipelines.gateway import deliver, purge, retrieve
from pipelines.screening import run as screening
from tests.integration.hospital_pacs import HospitalPacs, hospital_pacs
from tests.integration.models import approve, register_versions
from tests.integration.ris_endpoints import Endpoint, fhir_receiver, mllp_listener
from tests.integration.stack import Stack, free_ports

GATEWAY_AET = "RADFLOWGW"
NIGHT, BAD_NIGHT = "2026-11-02", "2026-11-03"
EXAMS = 4
PORTS: dict[str, int] = {}
SR_CLASSES = {"1.2.840.10008.5.1.4.1.1.88.33": "comprehensive", "1.2.840.10008.5.1.4.1.1.88.50": "cad"}
REJECTED_FOR_QUALITY = "113001"


def stack_settings(folder: Path) -> dict[str, str]:
    gateway, pacs_dicom, pacs_http = free_ports(3)
    PORTS.update(gateway=gateway, pacs_dicom=pacs_dicom, pacs_http=pacs_http)
    return {"RADFLOW_ORTHANC_AET": GATEWAY_AET, "RADFLOW_ORTHANC_DICOM_PORT": str(gateway),
            "RADFLOW_PACS_AET": "HOSPITALPACS", "RADFLOW_PACS_HOST": "127.0.0.1",
            "RADFLOW_PACS_PORT": str(pacs_dicom), "RADFLOW_PACS_MODE": "pull",
            "RADFLOW_PACS_RETRIEVE_ATTEMPTS": "2", "RADFLOW_DELIVERY_ATTEMPTS": "2",
            "RADFLOW_GATEWAY_RETENTION_DAYS": "2"}


@pytest.fixture(scope="module")
def pacs(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HospitalPacs]:
    with hospital_pacs(tmp_path_factory.mktemp("pacs"), PORTS["pacs_dicom"], PORTS["pacs_http"],
                       GATEWAY_AET, PORTS["gateway"]) as running:
        yield running


@pytest.fixture(scope="module")
def ris(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Endpoint]]:
    folder = tmp_path_factory.mktemp("ris")
    with mllp_listener(folder) as mllp, fhir_receiver(folder) as fhir:
        yield {"hl7": mllp, "fhir": fhir}


@pytest.fixture(scope="module")
def delivering(stack: Stack, ris: dict[str, Endpoint]) -> dict[str, str]:
    """The CLI environment with the RIS endpoints configured (delivery and retention)."""
    return {**stack.env, "RADFLOW_RIS_MLLP_HOST": "127.0.0.1", "RADFLOW_RIS_MLLP_PORT": str(ris["hl7"].port),
            "RADFLOW_RIS_FHIR_URL": f"http://127.0.0.1:{ris['fhir'].port}",
            "RADFLOW_RIS_FHIR_TOKEN": "ris-test-token"}


@pytest.fixture(scope="module")
def champion(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> None:
    register_versions(stack, "mammo-screening", [(128, 96)], tmp_path_factory.mktemp("onnx"))
    stack.radflow("promote", "--version", "1", "--reason", "first champion", login="admin")
    stack.radflow("deploy", "--model-uri", "models:/mammo-screening/1")


def _new_champion(stack: Stack, folder: Path, seed: int) -> str:
    """Another registered version made champion and deployed: every result of a rescreened
    night changes (scores, so the written objects' UIDs)."""
    (version,) = register_versions(stack, "mammo-screening", [(128, 96)], folder, first_seed=seed)
    approve(stack, "mammo-screening", version)
    stack.radflow("deploy", "--model-uri", f"models:/mammo-screening/{version}")
    return str(version)


def _synth_into_pacs(stack: Stack, pacs: HospitalPacs, date: str, exams: int, seed: int,
                     out: Path | None = None) -> dict[str, Any]:
    args = ["synth", "--exams", str(exams), "--date", date, "--seed", str(seed), "--site", "north"]
    result = stack.radflow(*args, *(["--out", str(out)] if out else []), env=pacs.synth_env(stack.env))
    assert result["stored"] == exams * 5  # 4 views and a report each
    return result


def _gateway(stack: Stack, path: str, **params: Any) -> Any:
    secret = stack.secret("orthanc", "RADFLOW_ORTHANC_PASSWORD")
    answer = httpx.get(f"http://127.0.0.1:{stack.env['RADFLOW_ORTHANC_HTTP_PORT']}{path}",
                       params=params, auth=("radflow", secret), timeout=60)
    answer.raise_for_status()
    return answer.json()


def _gateway_studies(stack: Stack, date: str | None = None) -> list[dict[str, Any]]:
    studies = _gateway(stack, "/studies", expand=1)
    return [s for s in studies if date is None or s["MainDicomTags"]["StudyDate"] == date.replace("-", "")]


def _radflow_objects(pacs: HospitalPacs) -> list[pydicom.Dataset]:
    """Every instance radflow wrote that the PACS holds (headers only)."""
    out = []
    for inst in pacs.instances():
        raw = httpx.get(f"{pacs.url}/instances/{inst['ID']}/file", auth=("pacs-admin", "pacs-test-password"),
                        headers={"Accept-Encoding": "identity"}, timeout=60).content
        ds = pydicom.dcmread(io.BytesIO(raw), stop_before_pixels=True)
        if ds.get("Manufacturer") == "radflow":
            out.append(ds)
    return out


def _current_srs(objects: list[pydicom.Dataset]) -> dict[tuple[str, str], list[str]]:
    """(study UID, SR kind) -> SR instances not rejected by an IOCM rejection note."""
    rejected = set()
    for ds in objects:
        if ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.59":  # Key Object Selection Document
            assert ds.ConceptNameCodeSequence[0].CodeValue == REJECTED_FOR_QUALITY
            for study in ds.CurrentRequestedProcedureEvidenceSequence:
                for series in study.ReferencedSeriesSequence:
                    rejected |= {str(r.ReferencedSOPInstanceUID) for r in series.ReferencedSOPSequence}
    current: dict[tuple[str, str], list[str]] = {}
    for ds in objects:
        kind = SR_CLASSES.get(str(ds.SOPClassUID))
        if kind and str(ds.SOPInstanceUID) not in rejected:
            current.setdefault((str(ds.StudyInstanceUID), kind), []).append(str(ds.SOPInstanceUID))
    return current


def test_pull_retrieves_the_night_the_pacs_holds(stack: Stack, pacs: HospitalPacs) -> None:
    _synth_into_pacs(stack, pacs, NIGHT, EXAMS, seed=71)
    assert _gateway_studies(stack, NIGHT) == []  # nothing routed: the gateway pulls
    out = stack.radflow("gateway", "retrieve", "--date", NIGHT)
    assert (out["mode"], out["listed"], out["retrieved"], out["not_retrieved"]) == ("pull", EXAMS, EXAMS, [])
    studies = _gateway_studies(stack, NIGHT)
    assert len(studies) == EXAMS
    held = sum(len(_gateway(stack, f"/studies/{s['ID']}/instances")) for s in studies)
    assert held == EXAMS * 5 == out["instances"]
    rows = stack.query("SELECT * FROM pacs_retrievals WHERE study_date = :d", d=NIGHT)
    assert len(rows) == EXAMS and {r["status"] for r in rows} == {"retrieved"}
    again = stack.radflow("gateway", "retrieve", "--date", NIGHT)
    assert (again["already_present"], again["retrieved"]) == (EXAMS, 0)
    assert len(_gateway_studies(stack, NIGHT)) == EXAMS


def test_what_the_pacs_cannot_send_is_listed_in_the_run_and_on_the_page(
        stack: Stack, pacs: HospitalPacs, champion: None) -> None:
    _synth_into_pacs(stack, pacs, BAD_NIGHT, 2, seed=72)
    pacs.route_gateway(PORTS["pacs_http"])  # the PACS sends the gateway's studies nowhere useful
    try:
        out = stack.radflow("gateway", "retrieve", "--date", BAD_NIGHT)
    finally:
        pacs.route_gateway(PORTS["gateway"])
    assert (out["listed"], out["retrieved"], len(out["not_retrieved"])) == (2, 0, 2)
    assert all("C-MOVE" in q["reason"] for q in out["not_retrieved"]), out["not_retrieved"]
    rows = stack.query("SELECT * FROM pacs_retrievals WHERE study_date = :d", d=BAD_NIGHT)
    assert {(r["status"], r["attempts"]) for r in rows} == {("failed", 2)}
    screened = stack.radflow("screen", "--date", BAD_NIGHT)
    assert screened["exams"] == 0 and len(screened["not_retrieved"]) == 2
    folder = stack.state / "worklists" / "mammo" / BAD_NIGHT
    listed = json.loads((folder / "worklist.json").read_text())["not_retrieved"]
    assert {q["exam_id"] for q in listed} == {r["exam_id"] for r in rows}
    assert "Not retrieved from the PACS (2)" in (folder / "index.html").read_text()
    fixed = stack.radflow("gateway", "retrieve", "--date", BAD_NIGHT)
    assert (fixed["retrieved"], fixed["not_retrieved"]) == (2, [])
    assert stack.radflow("screen", "--date", BAD_NIGHT)["not_retrieved"] == []


def test_push_only_declared_aes_may_store(stack: Stack, pacs: HospitalPacs,
                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    out = tmp_path_factory.mktemp("push")
    stack.radflow("synth", "--exams", "1", "--date", "2026-11-04", "--seed", "73", "--no-push",
                  "--out", str(out))
    files = sorted(str(p) for p in out.rglob("*.dcm"))
    assert files
    before = len(_gateway(stack, "/instances"))
    for calling in ("STRANGER", "HOSPITALPACS"):
        subprocess.run(["storescu", "-aet", calling, "-aec", GATEWAY_AET, "127.0.0.1",
                        str(PORTS["gateway"]), *files], capture_output=True, timeout=120)
        if calling == "STRANGER":
            assert len(_gateway(stack, "/instances")) == before, "an undeclared AE could store"
    assert len(_gateway(stack, "/instances")) == before + len(files)


def test_results_reach_the_pacs_and_ris_once_and_a_rerun_sends_nothing(
        stack: Stack, pacs: HospitalPacs, ris: dict[str, Endpoint], delivering: dict[str, str],
        champion: None) -> None:
    assert stack.radflow("screen", "--date", NIGHT)["exams"] == EXAMS
    out = stack.radflow("gateway", "deliver", "--date", NIGHT, env=delivering)
    assert out["sent"] == {"pacs": EXAMS, "ris-hl7": EXAMS, "ris-fhir": EXAMS} and out["failed"] == []
    rows = stack.query("SELECT * FROM deliveries WHERE study_date = :d", d=NIGHT)
    assert len(rows) == 3 * EXAMS and {(r["status"], r["attempts"]) for r in rows} == {("sent", 1)}
    objects = _radflow_objects(pacs)
    current = _current_srs(objects)
    studies = {str(ds.StudyInstanceUID) for ds in objects}
    assert len(studies) == EXAMS
    assert {k: len(v) for k, v in current.items()} == {(s, kind): 1 for s in studies
                                                        for kind in ("comprehensive", "cad")}
    assert len(ris["hl7"].messages()) == EXAMS and len(ris["fhir"].messages()) == EXAMS
    again = stack.radflow("gateway", "deliver", "--date", NIGHT, env=delivering)
    assert again["sent"] == {} and again["unchanged"] == {"pacs": EXAMS, "ris-hl7": EXAMS, "ris-fhir": EXAMS}
    assert len(_radflow_objects(pacs)) == len(objects)
    assert len(ris["hl7"].messages()) == EXAMS and len(ris["fhir"].messages()) == EXAMS


def test_ris_messages_file_the_result_under_the_patients_order(
        stack: Stack, ris: dict[str, Endpoint]) -> None:
    import hl7
    from fhir.resources.R4B.diagnosticreport import DiagnosticReport

    studies = {s["MainDicomTags"]["AccessionNumber"]: s for s in _gateway_studies(stack, NIGHT)}
    for text in ris["hl7"].messages():
        message = hl7.parse(str(text).replace("\n", "\r"))
        assert str(message.segment("MSH")[9]) == "ORU^R01^ORU_R01"
        accession = str(message.segment("OBR")[3]).split("^")[0]
        assert accession in studies, "the ORU names no accession number of the night"
        patient = studies[accession]["PatientMainDicomTags"]["PatientID"]
        assert str(message.segment("PID")[3]).split("^")[0] == patient
    for received in ris["fhir"].messages():
        assert isinstance(received, dict) and received["authorization"] == "Bearer ris-test-token"
        report = DiagnosticReport.model_validate(received["resource"])
        assert report.status == "final" and report.contained


def test_a_changed_result_replaces_the_old_one_in_the_pacs_and_corrects_the_ris(
        stack: Stack, pacs: HospitalPacs, ris: dict[str, Endpoint], delivering: dict[str, str],
        tmp_path_factory: pytest.TempPathFactory) -> None:
    version = _new_champion(stack, tmp_path_factory.mktemp("v2"), seed=2)
    changed = stack.radflow("screen", "--date", NIGHT)
    assert changed["model_version"] == version and changed["write_back"]["replaced"] > 0
    out = stack.radflow("gateway", "deliver", "--date", NIGHT, env=delivering)
    assert out["failed"] == [] and out["superseded"] > 0
    assert out["sent"] == {"pacs": EXAMS, "ris-hl7": EXAMS, "ris-fhir": EXAMS}
    objects = _radflow_objects(pacs)
    current = _current_srs(objects)
    assert len(current) == 2 * EXAMS and all(len(v) == 1 for v in current.values()), current
    import hl7

    corrections = [hl7.parse(str(m).replace("\n", "\r")) for m in ris["hl7"].messages()[EXAMS:]]
    assert len(corrections) == EXAMS
    assert {str(m.segment("OBR")[25]) for m in corrections} == {"C"}  # OBR-25 result status
    fhir = [m for m in ris["fhir"].messages() if isinstance(m, dict)][EXAMS:]
    assert len(fhir) == EXAMS and {m["resource"]["status"] for m in fhir} == {"corrected"}


def test_a_pacs_down_during_delivery_is_recorded_and_the_rerun_completes(
        stack: Stack, pacs: HospitalPacs, delivering: dict[str, str]) -> None:
    assert stack.radflow("screen", "--date", BAD_NIGHT)["exams"] == 2
    pacs.stop()
    try:
        failed = stack.radflow("gateway", "deliver", "--date", BAD_NIGHT, env=delivering, ok=False)
        assert failed["type"] == "TransientError" and "deliveries" in failed["error"]
        rows = stack.query("SELECT * FROM deliveries WHERE study_date = :d AND destination = 'pacs'",
                           d=BAD_NIGHT)
        assert len(rows) == 2 and {(r["status"], r["attempts"]) for r in rows} == {("failed", 2)}
        assert all(r["error"] for r in rows)
        ris_rows = stack.query("SELECT * FROM deliveries WHERE study_date = :d AND destination <> 'pacs'",
                               d=BAD_NIGHT)
        assert {r["status"] for r in ris_rows} == {"sent"}  # the RIS is up: it got its results
    finally:
        pacs.start()
    out = stack.radflow("gateway", "deliver", "--date", BAD_NIGHT, env=delivering)
    assert out["sent"] == {"pacs": 2} and out["unchanged"] == {"ris-hl7": 2, "ris-fhir": 2}
    rows = stack.query("SELECT * FROM deliveries WHERE study_date = :d AND destination = 'pacs'", d=BAD_NIGHT)
    assert {(r["status"], r["attempts"], r["error"]) for r in rows} == {("sent", 3, None)}


def test_a_pacs_speaking_dicomweb_gets_the_results_by_stow_rs(
        stack: Stack, pacs: HospitalPacs, delivering: dict[str, str],
        tmp_path_factory: pytest.TempPathFactory) -> None:
    stow = {**delivering, "RADFLOW_PACS_DICOMWEB_URL": f"{pacs.url}/dicom-web",
            "RADFLOW_PACS_DICOMWEB_USERNAME": "pacs-admin",
            "RADFLOW_PACS_DICOMWEB_PASSWORD": "pacs-test-password"}
    _new_champion(stack, tmp_path_factory.mktemp("v3"), seed=3)
    assert stack.radflow("screen", "--date", BAD_NIGHT)["write_back"]["replaced"] > 0
    before = len(pacs.instances())
    out = stack.radflow("gateway", "deliver", "--date", BAD_NIGHT, env=stow)
    assert out["failed"] == [] and out["sent"]["pacs"] == 2 and out["superseded"] > 0
    assert len(pacs.instances()) > before
    current = _current_srs(_radflow_objects(pacs))
    bad_studies = {s["MainDicomTags"]["StudyInstanceUID"] for s in _gateway_studies(stack, BAD_NIGHT)}
    assert {k: len(v) for k, v in current.items() if k[0] in bad_studies} == \
        {(s, kind): 1 for s in bad_studies for kind in ("comprehensive", "cad")}


@contextmanager
def _configured(env: dict[str, str]) -> Iterator[None]:
    """Stage functions called in this process with a CLI call's settings (`env`): the ten
    nights below skip ~40 interpreter starts."""
    from pipelines import config

    saved = {k: v for k, v in os.environ.items() if k.startswith("RADFLOW_")}
    try:
        for key in saved:
            del os.environ[key]
        os.environ.update({k: v for k, v in env.items() if k.startswith("RADFLOW_")})
        config.reset_settings()
        yield
    finally:
        for key in [k for k in os.environ if k.startswith("RADFLOW_")]:
            del os.environ[key]
        os.environ.update(saved)
        config.reset_settings()


def _gateway_bytes(stack: Stack) -> int:
    return int(_gateway(stack, "/statistics")["TotalDiskSize"])


def test_retention_keeps_the_gateway_bounded_over_ten_nights(
        stack: Stack, pacs: HospitalPacs, delivering: dict[str, str]) -> None:
    first = dt.date(2026, 11, 10)
    per_night, history, early_deleted = 2, [], 0
    for n in range(10):
        night = (first + dt.timedelta(days=n)).isoformat()
        today = (first + dt.timedelta(days=n + 1)).isoformat()
        _synth_into_pacs(stack, pacs, night, per_night, seed=100 + n)
        with _configured(delivering):
            assert retrieve.run(night).retrieved == per_night
        stack.wait_stable()
        stack.radflow("ingest")  # its worker processes: as the scheduler runs it
        with _configured(delivering):
            assert screening.run(night, notify=False).exams == per_night
            if n == 0:  # screened, not delivered: even far past retention, nothing of the night goes
                early = purge.run("2027-06-01")
                assert early.kept == {"results not delivered": per_night, "not screened": 1}, early
                early_deleted = early.deleted  # the earlier tests' nights, delivered already
                assert len(_gateway_studies(stack, night)) == per_night
            assert deliver.run(night).failed == []
            purged = purge.run(today)
        history.append({"night": night, "gateway_studies": len(_gateway_studies(stack)),
                        "gateway_bytes": _gateway_bytes(stack), "deleted": purged.deleted,
                        "pacs_studies": len(pacs.studies())})
    retained = [len(_gateway_studies(stack, (first + dt.timedelta(days=n)).isoformat())) for n in range(10)]
    # older than 2 days goes: after the last night's purge (the next day) its night and the
    # one before stay; the study of the push test stays too (ingested, never screened)
    assert retained == [0] * 8 + [per_night] * 2, (retained, history)
    assert max(h["gateway_studies"] for h in history) <= 1 + 2 * per_night, history
    kept = {s["MainDicomTags"]["StudyDate"] for s in pacs.studies()}
    assert {(first + dt.timedelta(days=n)).strftime("%Y%m%d") for n in range(10)} <= kept
    grown = [h["pacs_studies"] - history[0]["pacs_studies"] for h in history]
    assert grown == [per_night * n for n in range(10)]  # the PACS keeps every night
    pacs_bytes = int(pacs.get("/statistics")["TotalDiskSize"])
    assert history[-1]["gateway_bytes"] < pacs_bytes / 3, (history[-1], pacs_bytes)
    deletions = stack.query("SELECT * FROM gateway_deletions")
    assert sum(h["deleted"] for h in history) == 8 * per_night
    assert len(deletions) == early_deleted + 8 * per_night
    print(json.dumps(history))
