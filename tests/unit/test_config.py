"""RADFLOW_* settings: parsing, defaults, derived URLs and paths, secrets, redaction."""

from __future__ import annotations

import os
from pathlib import Path

import pydantic
import pytest

from pipelines import db
from pipelines.config import RadflowSettings, get_settings, reset_settings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No RADFLOW_* variable of the developer's shell leaks into the test."""
    for key in list(os.environ):
        if key.startswith("RADFLOW_") and not key.startswith("RADFLOW_TEST_"):
            monkeypatch.delenv(key)
    reset_settings()
    return monkeypatch


def test_defaults(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.chdir(tmp_path)
    s = RadflowSettings()
    assert s.state == tmp_path / ".radflow"
    assert s.orthanc_base_url == "http://127.0.0.1:8042"
    assert (s.orthanc_dicom_host, s.orthanc_dicom_port, s.orthanc_aet) == ("127.0.0.1", 4242, "ORTHANC")
    assert s.mlflow_uri == "http://127.0.0.1:5000"
    assert (s.triton_http_url, s.triton_grpc_url) == ("127.0.0.1:8000", "127.0.0.1:8001")
    assert s.triton_repository == tmp_path / ".radflow" / "triton" / "repository"
    assert s.triton_profile == "cpu"
    assert (s.image_height, s.image_width) == (128, 96)
    assert s.hospital_timezone == "UTC"
    assert not hasattr(s, "registered_model")  # the model names are the tasks' (pipelines/tasks.yaml)


def test_the_default_database_is_the_embedded_postgresql_with_its_generated_password(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("RADFLOW_STATE_DIR", str(tmp_path / "st"))
    secrets = tmp_path / "st" / "secrets"
    secrets.mkdir(parents=True)
    (secrets / "postgres.env").write_text("RADFLOW_POSTGRES_PASSWORD=generated-pw\n")
    s = RadflowSettings()
    assert s.embedded_postgres is True
    assert s.db_url == "postgresql+psycopg2://radflow:generated-pw@127.0.0.1:5433/radflow"
    # Airflow's metadata beside it, in its own database
    assert s.airflow_db_url == "postgresql+psycopg2://radflow:generated-pw@127.0.0.1:5433/radflow_airflow"


def test_a_given_database_url_is_used_and_airflow_gets_a_database_beside_it(
    clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("RADFLOW_DATABASE_URL", "postgresql+psycopg2://rf:pw@db.hospital.example:6432/results")
    s = RadflowSettings()
    assert s.embedded_postgres is False and s.db_url.endswith("@db.hospital.example:6432/results")
    assert s.airflow_db_url == "postgresql+psycopg2://rf:pw@db.hospital.example:6432/results_airflow"
    clean_env.setenv("RADFLOW_AIRFLOW_DATABASE_URL", "postgresql+psycopg2://af@db2/airflow")
    assert RadflowSettings().airflow_db_url == "postgresql+psycopg2://af@db2/airflow"


def test_paths_follow_the_state_dir(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("RADFLOW_STATE_DIR", str(tmp_path / "st"))
    s = RadflowSettings()
    root = tmp_path / "st"
    assert (s.lake_dir, s.logs_dir, s.worklists_dir) == (root / "lake", root / "logs", root / "worklists")
    assert s.mlflow_artifacts_dir == root / "mlflow" / "artifacts"
    assert s.orthanc_storage_dir == root / "orthanc" / "storage"
    assert not root.exists()  # reading settings creates nothing


def test_environment_variables_are_parsed_and_typed(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RADFLOW_ORTHANC_HTTP_PORT", "18042")
    clean_env.setenv("RADFLOW_MLFLOW_PORT", "15000")
    clean_env.setenv("RADFLOW_TRITON_HTTP_PORT", "18000")
    clean_env.setenv("RADFLOW_TRITON_GRPC_PORT", "18001")
    clean_env.setenv("RADFLOW_IMAGE_HEIGHT", "64")
    clean_env.setenv("RADFLOW_HOSPITAL_TIMEZONE", "Europe/Berlin")
    clean_env.setenv("RADFLOW_DATABASE_URL", "postgresql+psycopg2://radflow@db:5432/results")
    s = RadflowSettings()
    assert s.orthanc_http_port == 18042 and s.image_height == 64
    assert s.orthanc_base_url == "http://127.0.0.1:18042"
    assert s.mlflow_uri == "http://127.0.0.1:15000"
    assert (s.triton_http_url, s.triton_grpc_url) == ("127.0.0.1:18000", "127.0.0.1:18001")
    assert s.hospital_timezone == "Europe/Berlin"
    assert s.db_url == "postgresql+psycopg2://radflow@db:5432/results"


def test_explicit_service_urls_win_over_ports(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RADFLOW_ORTHANC_URL", "https://pacs.hospital.example:8443")
    clean_env.setenv("RADFLOW_ORTHANC_HTTP_PORT", "18042")
    clean_env.setenv("RADFLOW_MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    clean_env.setenv("RADFLOW_TRITON_URL", "triton.internal:8000")
    s = RadflowSettings()
    assert s.orthanc_base_url == "https://pacs.hospital.example:8443"
    assert s.mlflow_uri == "http://mlflow.internal:5000"
    assert s.triton_http_url == "triton.internal:8000"


def test_a_malformed_number_is_refused_naming_the_field(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RADFLOW_MLFLOW_PORT", "five-thousand")
    with pytest.raises(pydantic.ValidationError, match="mlflow_port"):
        RadflowSettings()


def test_unrelated_variables_are_ignored(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RADFLOW_NOT_A_SETTING", "x")
    RadflowSettings()


def test_settings_are_read_once_until_reset(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RADFLOW_MLFLOW_PORT", "15001")
    assert get_settings() is get_settings()
    assert get_settings().mlflow_port == 15001
    clean_env.setenv("RADFLOW_MLFLOW_PORT", "15002")
    assert get_settings().mlflow_port == 15001
    reset_settings()
    assert get_settings().mlflow_port == 15002


def test_the_orthanc_password_comes_from_the_environment_first(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("RADFLOW_STATE_DIR", str(tmp_path))
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "orthanc.env").write_text("RADFLOW_ORTHANC_PASSWORD=from-file\n")
    assert RadflowSettings().orthanc_secret() == "from-file"
    clean_env.setenv("RADFLOW_ORTHANC_PASSWORD", "from-env")
    s = RadflowSettings()
    assert s.orthanc_secret() == "from-env"
    assert "from-env" not in repr(s) and "from-env" not in str(s.model_dump())


def test_no_password_anywhere_gives_an_empty_secret(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("RADFLOW_STATE_DIR", str(tmp_path))
    assert RadflowSettings().orthanc_secret() == ""


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg2://radflow:s3cr3t-Pa55@db.hospital.example:5432/results",
        "postgresql://radflow:s3cr3t-Pa55@10.0.0.5/results?sslmode=require",
    ],
)
def test_redacted_url_hides_the_password(url: str) -> None:
    shown = db.redacted_url(url)
    assert "s3cr3t-Pa55" not in shown
    assert "radflow:***@" in shown
    assert "results" in shown


def test_redacted_url_leaves_a_url_without_password_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'radflow.db'}"
    assert db.redacted_url(url) == url
