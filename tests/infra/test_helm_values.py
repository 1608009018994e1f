"""infra/helm/airflow-values.yaml against the official chart's values.schema.json
(vendored: infra/helm/SCHEMA.md), plus what radflow needs from it."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from infra_checkers import (
    HELM_SCHEMA,
    HELM_VALUES,
    env_problems,
    load_yaml,
    schema_errors,
    unknown_top_level_keys,
)

VALUES: dict[str, Any] = load_yaml(HELM_VALUES)


def test_the_values_follow_the_chart_schema() -> None:
    assert schema_errors(VALUES, HELM_SCHEMA) == []
    assert unknown_top_level_keys(VALUES, HELM_SCHEMA) == []


def test_celery_with_existing_secrets_and_no_inline_secret() -> None:
    assert VALUES["executor"] == "CeleryExecutor"
    for key in ("metadataSecretName", "resultBackendSecretName", "brokerUrlSecretName"):
        assert VALUES["data"][key], key
    for key in ("fernetKeySecretName", "apiSecretKeySecretName", "jwtSecretName"):
        assert VALUES[key], key
    assert VALUES["redis"]["passwordSecretName"]
    for key in ("fernetKey", "apiSecretKey", "jwtSecret"):
        assert key not in VALUES, f"{key}: a secret written into the values"
    assert env_problems("env", VALUES["env"]) == []


def test_workers_serve_radflow_queues_and_mount_the_lake() -> None:
    celery = VALUES["workers"]["celery"]
    assert celery["queue"] == "default,pacs"
    assert celery["keda"]["enabled"] is False
    assert [s["queue"] for s in celery["sets"]] == ["gpu"]
    lake = dict(VALUES_ENV)["RADFLOW_LAKE_STORE"]
    for worker in (celery, celery["sets"][0]):
        mounts = {m["mountPath"]: m["name"] for m in worker["extraVolumeMounts"]}
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in worker["extraVolumes"]}
        assert claims[mounts[lake]] == "radflow-lake"
    assert celery["sets"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1


VALUES_ENV = [(e["name"], e["value"]) for e in VALUES["env"]]


@pytest.mark.parametrize("path,value", [(("workers", "celery", "queue"), 3),
                                        (("workers", "kedaa"), {}),
                                        (("data", "metadataSecretNam"), "x")])
def test_the_schema_check_catches_a_broken_value(path: tuple[str, ...], value: object) -> None:
    bad = copy.deepcopy(VALUES)
    node = bad
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert schema_errors(bad, HELM_SCHEMA)


def test_an_unknown_top_level_key_is_caught() -> None:
    assert unknown_top_level_keys({**VALUES, "workerz": {}}, HELM_SCHEMA)
