"""One typed settings object, read from RADFLOW_* environment variables when first needed.

Nothing here touches the disk or the network at import time. Secrets (passwords, keys)
come from the environment; for the embedded stack, `radflow stack up` writes random ones
to `<state_dir>/secrets/<service>.env` (mode 0600) and each secret falls back to its file.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_DIR = Path(__file__).resolve().parents[1]
PIPELINE_MLFLOW_LOGIN = "radflow-pipeline"  # the stages' MLflow service user; never an approver
CLINICAL_MIN_INPUT = (1024, 832)  # (rows, columns): the clinical profile's smallest input
# The Celery queues tasks are routed to: default (everything else), pacs (tasks that talk to
# the PACS or the gateway Orthanc), gpu (training).
QUEUES = ("default", "pacs", "gpu")


class RadflowSettings(BaseSettings):
    """Every knob radflow has; each field is `RADFLOW_<FIELD>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="RADFLOW_", extra="ignore")

    state_dir: Path = Path(".radflow")
    # The lake store: the one folder several workers share, holding what one task hands to
    # another on disk (the lake, the datasets and their DVC remote, worklists, promotion
    # reports, the nights' monitoring features). A path on a volume every worker mounts (NFS,
    # CephFS, a ReadWriteMany claim; an S3 bucket through a mount such as mountpoint-s3 or
    # the S3 CSI driver). Unset: the state dir (one machine). Everything else a task hands
    # on goes through PostgreSQL, Orthanc, MLflow or Triton.
    lake_store: Path | None = None

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

    # The hospital's PACS, a declared DICOM node (pipelines/pacs/remote.py). Unset pacs_aet:
    # no PACS is declared and the gateway Orthanc above is the only one (embedded default).
    # push: the PACS routes studies to the gateway (only it and gateway_store_aets may store);
    # pull: before each night's screening radflow asks the PACS (C-FIND) and retrieves.
    pacs_aet: str | None = None
    pacs_host: str = "127.0.0.1"
    pacs_port: int = 104
    pacs_mode: Literal["push", "pull"] = "push"
    pacs_retrieve: Literal["move", "get"] = "move"  # C-MOVE to the gateway, or C-GET
    pacs_retrieve_attempts: int = Field(default=3, ge=1)  # per study, then listed as not retrieved
    pacs_retrieve_timeout_s: float = Field(default=600, gt=0)  # one study's C-MOVE/C-GET
    pacs_dicomweb_url: str | None = None  # deliver results by STOW-RS here instead of C-STORE
    pacs_dicomweb_username: str | None = None
    pacs_dicomweb_password: SecretStr | None = None
    pacs_deliver: bool = True  # send SR and heatmaps to the declared PACS after screening
    delivery_attempts: int = Field(default=3, ge=1)  # per exam and destination, in one run
    delivery_timeout_s: float = Field(default=120, gt=0)  # one exam's C-STORE or STOW-RS
    # Other modalities that may C-STORE into the gateway: "AET@host:port" comma-separated.
    gateway_store_aets: str = ""
    # Retention: delete a study from the gateway once ingested, screened, delivered and this
    # many days old (by study date); unset keeps everything.
    gateway_retention_days: int | None = Field(default=None, ge=0)

    # The RIS (pipelines/ris): per exam an HL7 v2 ORU^R01 over MLLP and/or a FHIR R4
    # DiagnosticReport. Unset endpoints: nothing is sent.
    ris_mllp_host: str | None = None
    ris_mllp_port: int = 2575
    ris_mllp_timeout_s: float = Field(default=30, gt=0)
    ris_fhir_url: str | None = None  # FHIR base URL (DiagnosticReport is PUT by identifier)
    ris_fhir_token: SecretStr | None = None  # bearer token, if the FHIR server needs one
    ris_sending_facility: str = "RADFLOW"
    # The FHIR identifier systems of the hospital's patient ids and accession numbers (the
    # RIS finds the patient and the order by them); unset: type and value only.
    ris_patient_id_system: str | None = None
    ris_accession_system: str | None = None
    ris_receiving_application: str = "RIS"
    ris_receiving_facility: str = "HOSPITAL"

    # The worklist app (`radflow worklist serve`, or the Airflow plugin): where radiologists
    # open a study. {study_uid} and {accession} are filled at view time, never written.
    viewer_url: str = "{orthanc}/app/explorer.html#study?uuid={study_id}"

    # MLflow, behind its basic-auth app. Every radflow client logs in as mlflow_username
    # (the pipeline's service user; a person promoting from the CLI sets their own login).
    mlflow_tracking_uri: str | None = None
    mlflow_port: int = 5000
    mlflow_username: str = PIPELINE_MLFLOW_LOGIN
    mlflow_password: SecretStr | None = None  # else <state>/secrets/mlflow.env
    mlflow_admin_username: str = "admin"  # the embedded server's admin (creates the users)
    mlflow_admin_password: SecretStr | None = None  # else <state>/secrets/mlflow.env
    mlflow_experiment: str = "mammo-screening"
    # The embedded server checks a login's password (scrypt, 0.1-0.4 s of CPU) once per this
    # many seconds instead of at every request; 0 checks every request. It runs one worker,
    # so a password changed or a user deleted through MLflow's API applies at once.
    mlflow_auth_cache_s: int = Field(default=60, ge=0)
    # The registered-model policy (gates, approver logins); default mlflow/registered_models.yaml
    registry_policy_file: Path | None = None

    # Triton
    triton_http_port: int = 8000
    triton_grpc_port: int = 8001
    triton_metrics_port: int = 8002
    triton_url: str | None = None
    triton_repo: Path | None = None
    # Which generated configs deploy writes: "cpu" (Python backend running onnxruntime) or
    # "gpu" (onnxruntime backend with TensorRT, KIND_GPU), see pipelines/serving/repository.py.
    triton_profile: Literal["cpu", "gpu"] = "cpu"
    triton_python: Path | None = None
    triton_batch_size: int = 16
    # Key for Triton's model-repository API (load, unload, index), sent as the header
    # TRITON_ADMIN_HEADER; the embedded stack generates one into <state>/secrets/triton.env.
    triton_admin_key: SecretStr | None = None

    # Results database. Unset: the embedded PostgreSQL cluster that `radflow stack up`
    # initialises under <state>/postgres and runs on 127.0.0.1:postgres_port.
    database_url: str | None = None
    postgres_port: int = 5433
    postgres_password: SecretStr | None = None  # embedded cluster; else <state>/secrets/postgres.env

    # Airflow (api-server, scheduler, dag-processor, triggerer; LocalExecutor, FAB logins).
    airflow_url: str | None = None  # an existing api-server; unset = the embedded one
    airflow_port: int = 8080
    # Airflow's metadata database; unset = `<results database>_airflow` on the same server.
    airflow_database_url: str | None = None
    airflow_username: str = "admin"  # the embedded Airflow's admin login
    airflow_password: SecretStr | None = None  # else <state>/secrets/airflow.env
    # The executor: "local" runs tasks in the scheduler's machine (LocalExecutor); "celery"
    # sends them through the Celery broker to workers (CeleryExecutor), on this machine
    # (`radflow stack up --executor celery --workers N`) or on others (`radflow worker`).
    # Unset: what the last `stack up` chose (<state>/airflow/executor), else local.
    airflow_executor: Literal["local", "celery"] | None = None
    celery_broker_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")  # may hold a password
    # Workers `stack up` starts on this machine; 0 when every worker runs on other hosts.
    celery_workers: int = Field(default=1, ge=0)
    # Queues: default (everything), pacs (tasks that talk to the PACS or the gateway Orthanc),
    # gpu (training). A worker on a host without a GPU leaves gpu out.
    worker_queues: str = "default,pacs,gpu"
    worker_concurrency: int = Field(default=2, ge=1)  # task slots of one worker
    # What hospital IT controls (pipelines/orchestration/policy.py; Airflow pools, timeouts).
    pacs_pool_slots: int = Field(default=2, ge=1)  # concurrent tasks pulling from the PACS
    # Retraining started by its cron or by drift waits while clinicians use the machines:
    # "HH:MM-HH:MM" on clinical_days (hospital time zone); "" = never wait.
    clinical_hours: str = "07:00-18:00"
    clinical_days: str = "mon,tue,wed,thu,fri"
    task_timeout_minutes: float = Field(default=120, gt=0)  # execution timeout of every task
    training_timeout_minutes: float = Field(default=720, gt=0)  # of the training task
    task_retries: int = Field(default=2, ge=0)  # retries of a transient failure
    retry_delay_minutes: float = Field(default=5, gt=0)  # first retry; doubles each time
    max_retry_delay_minutes: float = Field(default=60, gt=0)
    # Deadline alert: the night's screening not finished by this local time (HH:MM; "" = none).
    screening_deadline: str = "07:00"

    # Which images make a screening exam (declared policy: pipelines/pacs/policy.py).
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
    # The one source of the model input size (not params.yaml); a screening task may
    # override it with image_height/image_width in pipelines/tasks.yaml, nothing else does.
    image_height: int = 128
    image_width: int = 96
    # Per-file pixel decode limit: an overrunning codec is killed, the study quarantined.
    decode_timeout_s: float = 60.0

    # Training: overrides params.yaml's epochs (tests and quick demos use few).
    train_epochs: int | None = None
    # The model (pipelines/training/profiles.py): "demo", the small ViewClassifier at
    # image_height x image_width; "clinical", the GMIC-style model, whose input defaults to
    # CLINICAL_MIN_INPUT and may not be smaller (set image_height/_width up to the full
    # detector, e.g. 2944x1920 or 4096x3328). Its sizes are params.yaml `train` keys.
    model_profile: Literal["demo", "clinical"] = "demo"
    # Where PyTorch and onnxruntime run (pipelines/modelfiles/device.py): auto = CUDA when
    # torch sees a GPU, else the CPU; cpu; cuda; cuda:N. Under torchrun each rank takes
    # cuda:LOCAL_RANK.
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")

    # Screening
    hospital_timezone: str = "UTC"

    # Nightly screening
    screening_schedule: str = "0 2 * * *"  # cron, in hospital_timezone
    # Catch-up: the scheduler runs every missed night since this date or moment (one at a
    # time). Unset: the go-live moment, the first `radflow stack up` that started Airflow
    # (<state>/airflow/go-live). `radflow screen --date` runs any night.
    screening_start_date: str | None = None
    screening_tasks_file: Path | None = None  # default: pipelines/tasks.yaml
    # Flag the k highest exam scores of a night instead of the operating point.
    screening_capacity: int | None = None
    # Exams per scoring batch: the night is cut into batches of this many, scored by
    # separate tasks (possibly on several workers), merged once every batch is in.
    screening_batch_exams: int = Field(default=50, ge=1)
    # Late arrivals: each night's run also screens again the nights of the previous this many
    # days whose studies in the gateway grew after they were planned (0: never).
    screening_late_days: int = Field(default=7, ge=0, le=60)
    # Notification of a published night (pipelines/notify.py, orchestration/notify.py)
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
    retrain_schedule: str = "0 3 * * 0"  # cron, hospital_timezone; drift also starts a retraining
    download_workers: int = 4
    ingest_workers: int = 2  # processes that download, decode and preprocess studies

    @model_validator(mode="after")
    def _profile_input_size(self) -> RadflowSettings:
        """The clinical profile reads at least CLINICAL_MIN_INPUT (its default input size)."""
        if self.model_profile != "clinical":
            return self
        low_h, low_w = CLINICAL_MIN_INPUT
        if "image_height" not in self.model_fields_set:
            self.image_height = low_h
        if "image_width" not in self.model_fields_set:
            self.image_width = low_w
        if self.image_height < low_h or self.image_width < low_w:
            raise ValueError(
                f"RADFLOW_IMAGE_HEIGHT/_WIDTH {self.image_height}x{self.image_width} is below the "
                f"clinical profile's minimum {low_h}x{low_w} (RADFLOW_MODEL_PROFILE=clinical): "
                "a calcification cluster would be a few pixels")
        return self

    @property
    def state(self) -> Path:
        return self.state_dir.resolve()

    @field_validator("lake_store", mode="before")
    @classmethod
    def _store_is_a_path(cls, value: object) -> object:
        scheme, sep, _ = str(value).partition("://")
        if value is not None and sep and scheme.isidentifier():
            raise ValueError(
                f"RADFLOW_LAKE_STORE must be a folder every worker mounts, got a {scheme}:// URL: "
                "mount the bucket (mountpoint-s3, the S3 CSI driver) and give its mount path")
        return value

    @property
    def store(self) -> Path:
        """The lake store (RADFLOW_LAKE_STORE, else the state dir)."""
        return (self.lake_store or self.state).resolve()

    @property
    def lake_dir(self) -> Path:
        return self.store / "lake"

    @property
    def logs_dir(self) -> Path:
        return self.state / "logs"

    @property
    def worklists_dir(self) -> Path:
        return self.store / "worklists"

    @property
    def mlflow_artifacts_dir(self) -> Path:
        return self.state / "mlflow" / "artifacts"

    @property
    def reports_dir(self) -> Path:
        return self.store / "reports"

    @property
    def orthanc_storage_dir(self) -> Path:
        return self.state / "orthanc" / "storage"

    def secret_file(self, service: str) -> Path:
        """`<state>/secrets/<service>.env`: the embedded stack's generated secrets (0600)."""
        return self.state / "secrets" / f"{service}.env"

    @property
    def secrets_file(self) -> Path:
        return self.secret_file("orthanc")

    @property
    def triton_secrets_file(self) -> Path:
        return self.secret_file("triton")

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
    def airflow_base_url(self) -> str:
        return (self.airflow_url or f"http://127.0.0.1:{self.airflow_port}").rstrip("/")

    @property
    def embedded_postgres(self) -> bool:
        """True when radflow runs its own PostgreSQL cluster (no database URL given)."""
        return self.database_url is None

    def embedded_database_url(self, database: str) -> str:
        return (f"postgresql+psycopg2://radflow:{self.postgres_secret()}@127.0.0.1:"
                f"{self.postgres_port}/{database}")

    @property
    def db_url(self) -> str:
        return self.database_url or self.embedded_database_url("radflow")

    @property
    def airflow_db_url(self) -> str:
        """Airflow's metadata database: given, else `<results db>_airflow` beside it (SQLite
        only when the results database is SQLite, i.e. in unit tests)."""
        if self.airflow_database_url:
            return self.airflow_database_url
        from sqlalchemy.engine import make_url

        url = make_url(self.db_url)
        if url.get_backend_name() == "sqlite":
            return f"sqlite:///{self.state / 'airflow' / 'airflow.db'}"
        return url.set(database=f"{url.database}_airflow").render_as_string(hide_password=False)

    def orthanc_secret(self) -> str:
        """The Orthanc password: from the environment, else from the stack's secrets file."""
        return _secret(self.orthanc_password, self.secrets_file, "RADFLOW_ORTHANC_PASSWORD")

    def triton_admin_secret(self) -> str:
        """Triton's model-repository key: from the environment, else the stack's secrets file."""
        return _secret(self.triton_admin_key, self.triton_secrets_file, "RADFLOW_TRITON_ADMIN_KEY")

    def postgres_secret(self) -> str:
        """The embedded PostgreSQL cluster's password of user radflow."""
        return _secret(self.postgres_password, self.secret_file("postgres"), "RADFLOW_POSTGRES_PASSWORD")

    def mlflow_secret(self) -> str:
        """The password of mlflow_username: the environment, else the stack's secrets file
        (which holds the pipeline user's, so it is used only for that login)."""
        if self.mlflow_password is not None:
            return self.mlflow_password.get_secret_value()
        if self.mlflow_username == self.mlflow_admin_username:
            return self.mlflow_admin_secret()
        if self.mlflow_username != PIPELINE_MLFLOW_LOGIN:
            return ""
        return read_secret_file(self.secret_file("mlflow"), "RADFLOW_MLFLOW_PASSWORD")

    def mlflow_admin_secret(self) -> str:
        return _secret(self.mlflow_admin_password, self.secret_file("mlflow"),
                       "RADFLOW_MLFLOW_ADMIN_PASSWORD")

    def airflow_secret(self) -> str:
        """The password of airflow_username (the embedded Airflow's admin)."""
        return _secret(self.airflow_password, self.secret_file("airflow"), "RADFLOW_AIRFLOW_PASSWORD")


TRITON_ADMIN_HEADER = "radflow-admin-key"


def _secret(given: SecretStr | None, path: Path, name: str) -> str:
    """A secret from the environment (`given`), else the `name=` line of a secrets file."""
    if given is not None:
        return given.get_secret_value()
    return read_secret_file(path, name)


def read_secret_file(path: Path, name: str) -> str:
    """The value of the `name=` line of a secrets file, or "" when there is none."""
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
