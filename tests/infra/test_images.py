"""infra/images/airflow (the radflow Airflow image) checked offline (no Docker daemon
here): base pinned to constraints.txt's Airflow on radflow's Python, every pip install
against the lock, non-root, DAGs in the image's dags folder; and the two entrypoints'
behaviour: RADFLOW_*_FILE secrets (Airflow image), loading the deployed models (Triton)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from infra_checkers import ROOT, dockerfile_bases, dockerfile_instructions

IMAGE = ROOT / "infra" / "images" / "airflow"
TEXT = (IMAGE / "Dockerfile").read_text()
LOCK = dict(re.findall(r"^([A-Za-z0-9._-]+)==(\S+)$", (ROOT / "constraints.txt").read_text(), re.M))


def instructions() -> list[tuple[str, str]]:
    return dockerfile_instructions(TEXT)


def pip_installs() -> list[list[str]]:
    calls = []
    for kw, args in instructions():
        if kw == "RUN":
            words = shlex.split(args.replace(";;", " ; "))
            for i, w in enumerate(words[:-1]):
                if w.endswith("pip") and words[i + 1] == "install":
                    end = next((j for j in range(i, len(words)) if words[j] in ("&&", ";")), len(words))
                    calls.append(words[i + 2:end])
    return calls


def test_the_base_is_the_official_airflow_of_the_lock_on_radflows_python() -> None:
    python = re.search(r'requires-python = ">=(\d+\.\d+),<', (ROOT / "pyproject.toml").read_text())
    assert python
    assert dockerfile_bases(TEXT) == [f"apache/airflow:slim-{LOCK['apache-airflow']}-python{python[1]}"]


def test_every_pip_install_is_pinned_by_the_lock() -> None:
    calls = pip_installs()
    assert len(calls) == 2, calls
    torch, rest = calls
    assert "--no-deps" in torch and "torch==$TORCH_VERSION+$variant" in torch
    assert f"ARG TORCH_VERSION={LOCK['torch'].split('+')[0]}" in TEXT, "the image's torch is not the lock's"
    assert "-c" in rest and rest[rest.index("-c") + 1] == "/tmp/constraints-without-torch.txt"
    for word in rest:
        if not word.startswith(("-", "/")) and word != "/tmp/constraints-without-torch.txt":
            name = re.split(r"[=<>\[]", word)[0]
            assert name in LOCK, f"the image installs {name}, which constraints.txt does not pin"
            if "==" in word:
                assert word == f"{name}=={LOCK[name]}", word
    assert "pip check" in TEXT


def test_it_runs_as_airflow_with_the_dags_in_the_image() -> None:
    users = [args for kw, args in instructions() if kw == "USER"]
    assert users[-1] == "airflow"
    copies = {args.split()[-1]: args.split()[-2] for kw, args in instructions() if kw == "COPY"}
    assert copies["/opt/airflow/dags"] == "dags"
    for kw, args in instructions():
        if kw == "COPY":
            for source in [w for w in args.split()[:-1] if not w.startswith("--")]:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    assert "ARG TORCH=cpu" in TEXT and "cuda)" in TEXT


def test_the_entrypoint_reads_radflow_settings_from_files(tmp_path: Path) -> None:
    script = (IMAGE / "entrypoint.sh").read_text().replace('exec /entrypoint "$@"', 'env')
    (tmp_path / "entry.sh").write_text(script)
    (tmp_path / "secret").write_text("s3cret\n")
    env = {"PATH": os.environ["PATH"], "RADFLOW_ORTHANC_PASSWORD_FILE": str(tmp_path / "secret"),
           "RADFLOW_MLFLOW_PASSWORD": "given", "RADFLOW_MLFLOW_PASSWORD_FILE": str(tmp_path / "secret")}
    out = subprocess.run(["bash", str(tmp_path / "entry.sh")], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "RADFLOW_ORTHANC_PASSWORD=s3cret\n" in out.stdout
    assert "RADFLOW_MLFLOW_PASSWORD=given\n" in out.stdout  # an explicit value wins
    env["RADFLOW_DATABASE_URL_FILE"] = str(tmp_path / "missing")
    out = subprocess.run(["bash", str(tmp_path / "entry.sh")], env=env, capture_output=True, text=True)
    assert out.returncode == 1 and "RADFLOW_DATABASE_URL_FILE" in out.stderr


def triton_repo(root: Path, classifier_deployed: bool) -> Path:
    repo = root / "models"
    for name in ("mammo_preprocessing", "mammo_screening", "mammo_screening_ensemble"):
        (repo / name).mkdir(parents=True)
        (repo / name / "config.pbtxt").write_text(f'name: "{name}"\n')
    (repo / "mammo_preprocessing" / "1").mkdir()
    (repo / "mammo_preprocessing" / "1" / "model.py").write_text("")
    (repo / "mammo_screening_ensemble" / "1").mkdir()
    (repo / "mammo_screening_ensemble" / "config.pbtxt").write_text(
        'platform: "ensemble"\n  step { model_name: "mammo_preprocessing" }\n'
        '  step { model_name: "mammo_screening" }\n')
    if classifier_deployed:
        (repo / "mammo_screening" / "3").mkdir()
        (repo / "mammo_screening" / "3" / "model.onnx").write_bytes(b"onnx")
    return repo


@pytest.mark.parametrize("deployed,loads", [
    (True, ["mammo_preprocessing", "mammo_screening", "mammo_screening_ensemble"]),
    (False, ["mammo_preprocessing"]),
])
def test_triton_serve_loads_what_deploy_left(tmp_path: Path, deployed: bool, loads: list[str]) -> None:
    repo = triton_repo(tmp_path, deployed)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "tritonserver").write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    (bin_dir / "tritonserver").chmod(0o755)
    (tmp_path / "key").write_text("k3y\n")
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "RADFLOW_TRITON_MODELS": str(repo),
           "RADFLOW_TRITON_ADMIN_KEY_FILE": str(tmp_path / "key")}
    out = subprocess.run(["sh", str(ROOT / "infra" / "images" / "triton" / "serve.sh")], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    args = out.stdout.splitlines()
    assert [args[i + 1] for i, a in enumerate(args) if a == "--load-model"] == loads
    assert "model-repository:radflow-admin-key=k3y" in args
