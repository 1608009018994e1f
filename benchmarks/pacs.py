"""A night with the hospital PACS: pull N exams from it, deliver their results back.

Setup (not timed): a throwaway stack (Orthanc as the gateway, MLflow, Triton), a second
Orthanc as the hospital PACS (its own storage, AE title and ports), a PostgreSQL results
database, N synthetic exams (4 views and a report each, 1/8 of the detector matrix) stored
in the PACS for one study date, a registered classifier deployed, an MLLP listener and a
FHIR receiver as the RIS.

Measured, each against the limit of the same transfer done in one bulk call:
- pull: `radflow gateway retrieve` (C-FIND, then one C-MOVE per study with its checks and
  records) vs one C-MOVE of every study in a single request, after emptying the gateway;
- delivery: `radflow gateway deliver` (per exam: the SR, CAD SR and heatmaps by C-STORE to
  the PACS, an ORU over MLLP and a FHIR DiagnosticReport, each tracked) vs one C-STORE job
  of the same instances, after deleting them from the PACS.

value = exams per minute of radflow's stage; limit = exams per minute of the bulk call;
ratio = value / limit (target 0.5: per-exam tracking may cost at most half the throughput).

    python -m benchmarks.pacs [--exams N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import write_result
from benchmarks.screening import _radflow

NIGHT = "2026-10-21"
GATEWAY_AET = "RADFLOWGW"


def _gateway(env: dict[str, str], method: str, path: str, **kwargs: Any) -> Any:
    from pipelines.config import read_secret_file

    secret = read_secret_file(Path(env["RADFLOW_STATE_DIR"]) / "secrets" / "orthanc.env",
                              "RADFLOW_ORTHANC_PASSWORD")
    answer = httpx.request(method, f"http://127.0.0.1:{env['RADFLOW_ORTHANC_HTTP_PORT']}{path}",
                           auth=("radflow", secret), timeout=3600, **kwargs)
    answer.raise_for_status()
    return answer.json() if answer.content else None


def _bulk_move(env: dict[str, str], uids: list[str]) -> float:
    """Seconds of one C-MOVE of every study into an emptied gateway."""
    for study in _gateway(env, "GET", "/studies"):
        _gateway(env, "DELETE", f"/studies/{study}")
    started = time.monotonic()
    _gateway(env, "POST", "/modalities/pacs/move", json={
        "Level": "Study", "Resources": [{"StudyInstanceUID": u} for u in uids],
        "TargetAet": GATEWAY_AET, "Synchronous": True, "Timeout": 3600})
    return time.monotonic() - started


def _bulk_store(env: dict[str, str], pacs: Any) -> float:
    """Seconds of one C-STORE job of radflow's objects, after deleting them from the PACS."""
    ours = [i["ID"] for i in _gateway(env, "GET", "/instances", params={"expand": 1})
            if i["MainDicomTags"].get("SOPInstanceUID") and _is_ours(env, i["ID"])]
    for inst in pacs.instances():
        tags = pacs.get(f"/instances/{inst['ID']}/simplified-tags")
        if tags.get("Manufacturer") == "radflow":
            httpx.delete(f"{pacs.url}/instances/{inst['ID']}", auth=("pacs-admin", "pacs-test-password"))
    started = time.monotonic()
    _gateway(env, "POST", "/modalities/pacs/store", json={"Resources": ours, "Synchronous": True})
    return time.monotonic() - started


def _is_ours(env: dict[str, str], instance_id: str) -> bool:
    tags = _gateway(env, "GET", f"/instances/{instance_id}/simplified-tags")
    return bool(tags.get("Manufacturer") == "radflow")


def _setup_champion(env: dict[str, str], state: Path, db_url: str) -> None:
    from pipelines.tracking import credentials
    from tests.integration.models import register_versions
    from tests.integration.stack import Stack

    stack = Stack(env=env, state=state, db_url=db_url)
    with credentials("admin", stack.secret("mlflow", "RADFLOW_MLFLOW_ADMIN_PASSWORD")):
        register_versions(stack, "mammo-screening", [(128, 96)], state / "models")
    _radflow(stack.login_env("admin"), "promote", "--version", "1", "--reason", "benchmark champion")
    _radflow(env, "deploy", "--model-uri", "models:/mammo-screening/1")


def _fill_pacs(env: dict[str, str], pacs: Any, exams: int) -> None:
    started = time.monotonic()
    for first in range(0, exams, 100):
        n = min(100, exams - first)
        _radflow(pacs.synth_env(env), "synth", "--exams", str(n), "--date", NIGHT, "--site", "north",
                 "--seed", str(2000 + first))
        print(f"setup: {first + n}/{exams} exams stored in the PACS "
              f"({(first + n) / (time.monotonic() - started):.1f} exams/s)", flush=True)


def _measure(env: dict[str, str], state: Path, db_url: str, pacs: Any, exams: int,
             delivering: dict[str, str]) -> dict[str, float]:
    _fill_pacs(env, pacs, exams)
    started = time.monotonic()
    pulled = _radflow(env, "gateway", "retrieve", "--date", NIGHT)
    pull_s = time.monotonic() - started
    assert pulled["retrieved"] == exams, pulled
    uids = [s["MainDicomTags"]["StudyInstanceUID"] for s in pacs.studies()]
    move_s = _bulk_move(env, uids)
    _setup_champion(env, state, db_url)
    started = time.monotonic()
    screened = _radflow(env, "screen", "--date", NIGHT)
    screen_s = time.monotonic() - started
    started = time.monotonic()
    delivered = _radflow(delivering, "gateway", "deliver", "--date", NIGHT)
    deliver_s = time.monotonic() - started
    assert delivered["failed"] == [] and screened["exams"] == exams, delivered
    store_s = _bulk_store(env, pacs)
    return {"pull_s": pull_s, "bulk_move_s": move_s, "screen_s": screen_s, "deliver_s": deliver_s,
            "bulk_store_s": store_s, "deliveries_sent": float(sum(delivered["sent"].values()))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--exams", type=int, default=200)
    args = parser.parse_args()

    from tests.integration.hospital_pacs import hospital_pacs
    from tests.integration.ris_endpoints import fhir_receiver, mllp_listener
    from tests.integration.stack import free_ports, stack_env
    from tests.postgres import postgres_database

    with tempfile.TemporaryDirectory(prefix="radflow-bench-") as tmp, postgres_database() as db_url:
        state = Path(tmp)
        gateway, pacs_dicom, pacs_http = free_ports(3)
        env = {**stack_env(state, db_url), "RADFLOW_ORTHANC_AET": GATEWAY_AET,
               "RADFLOW_ORTHANC_DICOM_PORT": str(gateway), "RADFLOW_PACS_AET": "HOSPITALPACS",
               "RADFLOW_PACS_PORT": str(pacs_dicom), "RADFLOW_PACS_MODE": "pull"}
        _radflow(env, "stack", "up", "--only", "orthanc,mlflow,triton", timeout=600)
        try:
            with hospital_pacs(state / "pacs", pacs_dicom, pacs_http, GATEWAY_AET, gateway) as pacs, \
                    mllp_listener(state) as mllp, fhir_receiver(state) as fhir:
                delivering = {**env, "RADFLOW_RIS_MLLP_HOST": "127.0.0.1",
                              "RADFLOW_RIS_MLLP_PORT": str(mllp.port),
                              "RADFLOW_RIS_FHIR_URL": f"http://127.0.0.1:{fhir.port}"}
                t = _measure(env, state, db_url, pacs, args.exams, delivering)
        finally:
            _radflow(env, "stack", "down", timeout=300)
    n = args.exams
    params = {"exams": n, "instances_per_exam": 5, "scale": 0.125, "ris": ["hl7", "fhir"]}
    write_result("pacs_pull", "exams/min", 60 * n / t["pull_s"], 60 * n / t["bulk_move_s"],
                 "exams/min of one C-MOVE of every study of the night in a single request", 0.5,
                 params, {k: round(v, 2) for k, v in t.items()})
    write_result("pacs_delivery", "exams/min", 60 * n / t["deliver_s"], 60 * n / t["bulk_store_s"],
                 "exams/min of one C-STORE job of the same result instances to the PACS (no RIS, "
                 "no tracking)", 0.5, params, {k: round(v, 2) for k, v in t.items()})


if __name__ == "__main__":
    main()
