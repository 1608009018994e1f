"""Registered model versions with known weights, for serving and screening tests.

Each version is a small seeded classifier, exported to ONNX and registered as training
registers one (ONNX artifact, `onnx_sha256`, `operating_point` and `suspicion_cuts`
tags), so every served answer can be compared with onnxruntime on the same file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.integration.stack import Stack


def register_versions(stack: Stack, name: str, sizes: list[tuple[int, int]], folder: Path,
                      operating_point: float = 0.5, first_seed: int = 1) -> dict[int, Path]:
    """Register one version per (height, width) in `sizes` (seeds first_seed, first_seed + 1,
    ...), creating the registered model if needed; {version: ONNX file}."""
    import torch

    import mlflow
    from pipelines.modelfiles.onnx import export, sha256
    from pipelines.training.model import ViewClassifier

    mlflow.set_tracking_uri(f"http://127.0.0.1:{stack.env['RADFLOW_MLFLOW_PORT']}")
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name)
    mlflow.set_experiment(f"{name}-tests")
    files = {}
    for seed, (h, w) in enumerate(sizes, start=first_seed):
        torch.manual_seed(seed)
        path = folder / name / str(seed) / "model.onnx"
        path.parent.mkdir(parents=True)
        example = np.random.default_rng(seed).random((2, 1, h, w), np.float32)
        export(ViewClassifier(width=4).eval(), example, path)
        with mlflow.start_run() as run:
            mlflow.log_artifact(str(path), "onnx")
        mv = client.create_model_version(name, f"{run.info.artifact_uri}/onnx", run.info.run_id)
        cuts = [round(float(c), 6) for c in np.linspace(0.1, 0.9, 9)]
        for key, value in {"onnx_sha256": sha256(path), "operating_point": str(operating_point),
                           "suspicion_cuts": json.dumps(cuts)}.items():
            client.set_model_version_tag(name, mv.version, key, value)
        files[int(mv.version)] = path
    return files


def approve(stack: Stack, name: str, version: int | str, approver: str = "admin") -> None:
    """Make `version` champion as a passed gate does (the audit row, then the alias), for
    tests about serving: the gate itself is tested in test_promotion.py, and it needs a
    frozen dataset these tests do not build."""
    import sqlalchemy as sa

    import mlflow
    from pipelines import db
    from pipelines.registry import audit

    client = mlflow.MlflowClient(f"http://127.0.0.1:{stack.env['RADFLOW_MLFLOW_PORT']}")
    try:
        previous: str | None = str(client.get_model_version_by_alias(name, "champion").version)
    except Exception:
        previous = None
    db.migrate(stack.db_url)
    eng = sa.create_engine(stack.db_url)
    try:
        with eng.begin() as conn:
            audit.record(conn, model_name=name, action=audit.PROMOTE, version=str(version),
                         alias="champion", previous_version=previous, approver=approver,
                         reason="test approval", outcome=audit.PROMOTED, gates={"checks": []},
                         approved_via="mlflow")
    finally:
        eng.dispose()
    client.set_registered_model_alias(name, "champion", str(version))
