"""A second Orthanc standing in for the hospital's PACS: its own storage, AE title and
ports, started by the test and stopped after it. It knows the gateway (radflow's Orthanc)
as a DICOM node, so it answers the gateway's C-FIND, C-MOVEs studies to it and accepts
its C-STOREs; it also accepts C-STOREs from radflow's synth (AE RADFLOW on loopback), the
stand-in for the hospital's modalities."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from pipelines.stack.orthanc import command, dicomweb_plugin
from tests.integration.stack import free_ports

PACS_AET = "HOSPITALPACS"
USER, PASSWORD = "pacs-admin", "pacs-test-password"


@dataclass
class HospitalPacs:
    aet: str
    dicom_port: int
    http_port: int
    folder: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def get(self, path: str, **params: Any) -> Any:
        answer = httpx.get(f"{self.url}{path}", params=params, auth=(USER, PASSWORD), timeout=60)
        answer.raise_for_status()
        return answer.json()

    def gateway_env(self) -> dict[str, str]:
        """The gateway's settings declaring this PACS as its DICOM node."""
        return {"RADFLOW_PACS_AET": self.aet, "RADFLOW_PACS_HOST": "127.0.0.1",
                "RADFLOW_PACS_PORT": str(self.dicom_port)}

    def synth_env(self, env: dict[str, str]) -> dict[str, str]:
        """A CLI environment whose `radflow synth` C-STOREs into this PACS, not the gateway."""
        return {**env, "RADFLOW_ORTHANC_DICOM_PORT": str(self.dicom_port), "RADFLOW_ORTHANC_AET": self.aet}

    def studies(self) -> list[dict[str, Any]]:
        return list(self.get("/studies", expand=1))

    def instances(self) -> list[dict[str, Any]]:
        return list(self.get("/instances", expand=1))

    def route_gateway(self, port: int) -> None:
        """Where the PACS sends C-MOVEs for the gateway's AE (a wrong port breaks routing)."""
        modality = self.get("/modalities", expand=1)["gateway"]
        answer = httpx.put(f"{self.url}/modalities/gateway", auth=(USER, PASSWORD), timeout=30,
                           json={**modality, "Port": port})
        answer.raise_for_status()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)

    def start(self) -> None:
        config = self.folder / "orthanc.json"
        self.process = subprocess.Popen(command(config), stdout=open(self.folder / "orthanc.log", "ab"),
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/system", auth=(USER, PASSWORD), timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"the test PACS did not start; log: {self.folder / 'orthanc.log'}")

    process: subprocess.Popen[bytes] = None  # type: ignore[assignment]


def pacs_ports() -> tuple[int, int]:
    """(DICOM, HTTP) ports for a test PACS."""
    dicom, http = free_ports(2)
    return dicom, http


def write_config(folder: Path, dicom_port: int, http_port: int, gateway_aet: str,
                 gateway_port: int) -> Path:
    plugin = dicomweb_plugin()
    config = {
        "Name": "hospital-pacs", "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"), "HttpPort": http_port, "DicomPort": dicom_port,
        "DicomAet": PACS_AET, "RemoteAccessAllowed": False, "AuthenticationEnabled": True,
        "RegisteredUsers": {USER: PASSWORD}, "DicomAlwaysAllowStore": False,
        "DicomCheckModalityHost": True, "StableAge": 1,
        "DicomModalities": {
            "gateway": {"AET": gateway_aet, "Host": "127.0.0.1", "Port": gateway_port},
            "modalities": {"AET": "RADFLOW", "Host": "127.0.0.1", "Port": 104,
                           "AllowFind": False, "AllowMove": False, "AllowGet": False},
        },
        "Plugins": [str(plugin)] if plugin else [],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "orthanc.json"
    path.write_text(json.dumps(config, indent=1))
    return path


@contextmanager
def hospital_pacs(folder: Path, dicom_port: int, http_port: int, gateway_aet: str,
                  gateway_port: int) -> Iterator[HospitalPacs]:
    """A running test PACS on the given ports, stopped (and its files kept) afterwards."""
    write_config(folder, dicom_port, http_port, gateway_aet, gateway_port)
    pacs = HospitalPacs(PACS_AET, dicom_port, http_port, folder)
    pacs.start()
    try:
        yield pacs
    finally:
        pacs.stop()
