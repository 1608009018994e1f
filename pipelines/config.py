"""One typed settings object, read from RADFLOW_* environment variables when first needed.

Nothing here touches the disk or the network at import time. Secrets (the Orthanc
password) come from the environment; for the embedded stack, `radflow stack up` writes a
random one to `<state_dir>/secrets/orthanc.env` (mode 0600) and `orthanc_password` falls
back to it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_DIR = Path(__file__).resolve().parents[1]


class RadflowSettings(BaseSettings):
    """Every knob radflow has; each field is `RADFLOW_<FIELD>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="RADFLOW_", extra="ignore")

    state_dir: Path = Path(".radflow")

    # Orthanc (PACS). orthanc_url unset means the embedded Orthanc of `radflow stack up`.
    orthanc_url: str | None = None
    orthanc_http_port: int = 8042
    orthanc_dicom_host: str = "127.0.0.1"
    orthanc_dicom_port: int = 4242
    orthanc_aet: str = "ORTHANC"
    orthanc_username: str = "radflow"
    orthanc_password: SecretStr | None = None
    orthanc_stable_age_s: int = 10
    calling_aet: str = "RADFLOW"

    # MLflow
    mlflow_tracking_uri: str | None = None
    mlflow_port: int = 5000
    mlflow_experiment: str = "mammo-screening"
    registered_model: str = "mammo-screening"

    # Triton
    triton_http_port: int = 8000
    triton_grpc_port: int = 8001
    triton_metrics_port: int = 8002
    triton_url: str | None = None
    triton_repo: Path | None = None
    triton_model: str = "mammo_screening"
    # Which generated configs deploy writes: "cpu" (Python backend running onnxruntime) or
    # "gpu" (onnxruntime backend with TensorRT, KIND_GPU), see pipelines/serving/repository.py.
    triton_profile: Literal["cpu", "gpu"] = "cpu"
    triton_python: Path | None = None
    triton_batch_size: int = 16
    # Key for Triton's model-repository API (load, unload, index), sent as the header
    # TRITON_ADMIN_HEADER; the embedded stack generates one into <state>/secrets/triton.env.
    triton_admin_key: SecretStr | None = None

    # Results database: PostgreSQL URL in production, a SQLite file by default.
    database_url: str | None = None

    # Which images make a screening exam (declared policy: pipelines/ingest/policy.py).
    exam_extra_views: Literal["prefer-standard", "quarantine"] = "prefer-standard"
    exam_for_processing: Literal["skip", "quarantine"] = "skip"
    exam_other_modalities: Literal["quarantine", "skip"] = "quarantine"
    # Text burned into the pixels (pipelines/imaging/burned_in.py): refuse the exam, or
    # blank the text lines and record the Clean Pixel Data Option (113101) in the header.
    burned_in_text: Literal["quarantine", "mask"] = "quarantine"
    burned_in_text_min_glyphs: int = Field(default=6, ge=2)  # shorter lines are markers ("RMLO")

    # Label sources besides the SR reports in the PACS (read inside the ingest boundary).
    ris_export: Path | None = None  # CSV: accession_number or study_instance_uid, report_text
    pathology_file: Path | None = None  # CSV: exam_id (pseudonym), laterality, outcome, date

    # Preprocessing: every view becomes a float image of this size (training = serving).
    image_height: int = 128
    image_width: int = 96
    # Per-file pixel decode limit: an overrunning codec is killed, the study quarantined.
    decode_timeout_s: float = 60.0

    # Training: overrides params.yaml's epochs (tests and quick demos use few).
    train_epochs: int | None = None

    # Screening
    hospital_timezone: str = "UTC"

    # Nightly screening
    screening_schedule: str = "0 2 * * *"  # cron, in hospital_timezone
    # Catch-up: the scheduler runs every missed night since this date (one at a time); set it
    # to the go-live date. Nights before it cannot be run by the DAG (Airflow skips tasks
    # before a DAG's start date); `radflow screen --date` runs any night.
    screening_start_date: str = "2026-01-01"
    screening_tasks_file: Path | None = None  # default: pipelines/screening/tasks.yaml
    # Flag the k highest exam scores of a night instead of the operating point.
    screening_capacity: int | None = None
    # Notification of a published night (pipelines/screening/notify.py, orchestration/notify.py)
    notify_webhook_url: SecretStr | None = None  # POST JSON here; may embed a token, so secret
    notify_webhook_timeout_s: float = Field(default=10.0, gt=0)
    notify_email_to: str = ""  # comma-separated recipients; empty = no e-mail
    notify_smtp_conn_id: str = "smtp_default"  # Airflow connection of the mail server
    notify_worklist_base_url: str | None = None  # where worklists_dir is served; None = file paths
    # Monitoring (pipelines/monitoring): drift of a night against the champion's validation
    # data, judged per family with Benjamini-Hochberg over all of the night's tests.
    drift_alpha: float = Field(default=0.01, gt=0, lt=1)  # q-value below which a test has drifted
    drift_psi_max: float = Field(default=0.25, gt=0)  # PSI reported above this (informational)
    drift_window_nights: int = Field(default=3, ge=1)  # sustained: min_nights of the last window
    drift_min_nights: int = Field(default=2, ge=1)  # a single noisy night never alerts
    drift_min_exams: int = Field(default=20, ge=1)  # nights with fewer exams are not judged
    drift_cooldown_nights: int = Field(default=7, ge=0)  # no second alert this soon after one
    drift_qc_history_nights: int = Field(default=30, ge=1)  # a device's artifact-rate baseline
    monitoring_schedule: str = "0 6 * * *"  # cron, hospital_timezone: after the night's screening
    download_workers: int = 4
    ingest_workers: int = 2  # processes that download, decode and preprocess studies

    @property
    def state(self) -> Path:
        return self.state_dir.resolve()

    @property
    def lake_dir(self) -> Path:
        return self.state / "lake"

    @property
    def logs_dir(self) -> Path:
        return self.state / "logs"

    @property
    def worklists_dir(self) -> Path:
        return self.state / "worklists"

    @property
    def mlflow_artifacts_dir(self) -> Path:
        return self.state / "mlflow" / "artifacts"

    @property
    def reports_dir(self) -> Path:
        return self.state / "reports"

    @property
    def orthanc_storage_dir(self) -> Path:
        return self.state / "orthanc" / "storage"

    @property
    def secrets_file(self) -> Path:
        return self.state / "secrets" / "orthanc.env"

    @property
    def triton_secrets_file(self) -> Path:
        return self.state / "secrets" / "triton.env"

    @property
    def orthanc_base_url(self) -> str:
        return self.orthanc_url or f"http://127.0.0.1:{self.orthanc_http_port}"

    @property
    def mlflow_uri(self) -> str:
        return self.mlflow_tracking_uri or f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def triton_http_url(self) -> str:
        return self.triton_url or f"127.0.0.1:{self.triton_http_port}"

    @property
    def triton_grpc_url(self) -> str:
        return f"127.0.0.1:{self.triton_grpc_port}"

    @property
    def triton_repository(self) -> Path:
        # the live repository (deploy rewrites configs, adds version folders) lives in the
        # state dir; serving/triton_repo holds the reviewed sources it is generated from
        return (self.triton_repo or self.state / "triton" / "repository").resolve()

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.state / 'radflow.db'}"

    def orthanc_secret(self) -> str:
        """The Orthanc password: from the environment, else from the stack's secrets file."""
        return _secret(self.orthanc_password, self.secrets_file, "RADFLOW_ORTHANC_PASSWORD")

    def triton_admin_secret(self) -> str:
        """Triton's model-repository key: from the environment, else the stack's secrets file."""
        return _secret(self.triton_admin_key, self.triton_secrets_file, "RADFLOW_TRITON_ADMIN_KEY")


TRITON_ADMIN_HEADER = "radflow-admin-key"


def _secret(given: SecretStr | None, path: Path, name: str) -> str:
    """A secret from the environment (`given`), else the `name=` line of a secrets file."""
    if given is not None:
        return given.get_secret_value()
    if path.exists():
        for line in path.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == name:
                return value.strip()
    return ""


@functools.cache
def get_settings() -> RadflowSettings:
    """The process-wide settings, read from the environment on first use."""
    return RadflowSettings()


def reset_settings() -> None:
    """Forget the cached settings (tests and the CLI's --state-dir use this)."""
    get_settings.cache_clear()
