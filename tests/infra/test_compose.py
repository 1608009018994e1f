"""infra/compose.yaml: valid against the Compose Specification, every image pinned, no
secret inline, a healthcheck on every long-running service, only the hospital-facing
ports published, and the shared volumes where radflow's settings say they are."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from infra_checkers import (
    COMPOSE_FILE,
    COMPOSE_SCHEMA,
    compose_images,
    compose_secret_problems,
    image_problems,
    load_yaml,
    schema_errors,
)

COMPOSE: dict[str, Any] = load_yaml(COMPOSE_FILE)
SERVICES: dict[str, Any] = COMPOSE["services"]
ONE_SHOTS = {"stack-init", "bucket-init", "airflow-init"}
# what a hospital must reach: Airflow UI/API + worklist, Orthanc DICOM and HTTP (viewers)
PUBLISHED = {"airflow-api-server": {"8080:8080"}, "orthanc": {"4242:4242", "8042:8042"}}
WORKERS = ("airflow-worker", "airflow-worker-gpu")


def test_the_compose_file_follows_the_compose_specification() -> None:
    assert schema_errors(COMPOSE, COMPOSE_SCHEMA) == []


def test_every_image_is_pinned() -> None:
    assert image_problems(compose_images(COMPOSE)) == []
    assert all("image" in svc for svc in SERVICES.values())


def test_no_secret_is_written_inline() -> None:
    assert compose_secret_problems(COMPOSE) == []


def test_every_secret_a_service_uses_is_declared_from_a_file() -> None:
    declared = set(COMPOSE["secrets"])
    for name, svc in SERVICES.items():
        for secret in svc.get("secrets", []):
            source = secret["source"] if isinstance(secret, dict) else secret
            assert source in declared, f"services.{name} uses undeclared secret {source}"


def test_long_running_services_have_healthchecks_and_one_shots_do_not_restart() -> None:
    for name, svc in SERVICES.items():
        if name in ONE_SHOTS:
            assert svc.get("restart") == "no", name
        else:
            assert svc.get("healthcheck", {}).get("test"), f"services.{name} has no healthcheck"


def test_only_the_hospital_facing_ports_are_published() -> None:
    published = {name: set(map(str, svc["ports"])) for name, svc in SERVICES.items() if svc.get("ports")}
    assert published == PUBLISHED


def test_workers_mount_the_lake_store_and_the_triton_repository() -> None:
    for name in WORKERS:
        svc = SERVICES[name]
        env = svc["environment"]
        mounts = dict(v.split(":")[:2][::-1] for v in svc["volumes"])
        assert mounts[env["RADFLOW_LAKE_STORE"]] == "lake", name
        assert mounts[env["RADFLOW_TRITON_REPO"]] == "triton-models", name
    assert any(v.startswith("triton-models:/models") for v in SERVICES["triton"]["volumes"])
    assert SERVICES["airflow-worker"]["command"][-1] == "default,pacs"
    assert SERVICES["airflow-worker-gpu"]["command"][3] == "gpu"


def test_gpu_services_reserve_a_gpu() -> None:
    for name in ("triton", "airflow-worker-gpu"):
        devices = SERVICES[name]["deploy"]["resources"]["reservations"]["devices"]
        assert any("gpu" in d["capabilities"] for d in devices), name


def test_the_broker_and_result_backend_come_from_secret_files() -> None:
    env = SERVICES["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CELERY__BROKER_URL_CMD"] == "cat /run/secrets/airflow_broker_url"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND_CMD"] == "cat /run/secrets/airflow_result_backend"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


# --- each checker catches a broken file -------------------------------------------------

def broken(change: str) -> dict[str, Any]:
    doc = copy.deepcopy(COMPOSE)
    svc = doc["services"]["postgres"]
    if change == "schema":
        svc["restart"] = ["always"]
    elif change == "unknown-key":
        svc["helthcheck"] = {}
    elif change == "latest":
        svc["image"] = "postgres:latest"
    elif change == "untagged":
        svc["image"] = "postgres"
    elif change == "password":
        svc["environment"]["POSTGRES_PASSWORD"] = "hunter2hunter2"
    elif change == "url":
        svc["environment"]["DATABASE"] = "postgresql://radflow:hunter2@postgres/radflow"
    elif change == "interpolated":
        svc["environment"]["POSTGRES_PASSWORD"] = "${POSTGRES_PASSWORD:?set in .env}"
    return doc


@pytest.mark.parametrize("change", ["schema", "unknown-key"])
def test_the_schema_check_catches_a_broken_file(change: str) -> None:
    assert schema_errors(broken(change), COMPOSE_SCHEMA)


@pytest.mark.parametrize("change", ["latest", "untagged"])
def test_the_pin_check_catches_a_floating_image(change: str) -> None:
    assert image_problems(compose_images(broken(change)))


def test_the_pin_check_catches_an_image_from_the_environment_without_default() -> None:
    assert image_problems({"x": "${IMAGE}"})


@pytest.mark.parametrize("change", ["password", "url", "interpolated"])
def test_the_secret_check_catches_an_inline_secret(change: str) -> None:
    assert compose_secret_problems(broken(change))
