"""dvc.yaml reads as the table of contents of the pipeline: DVC itself parses it, the
stages are the Airflow stages, and every command is a `radflow` subcommand that exists."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipelines import cli

ROOT = Path(__file__).resolve().parents[2]
RADFLOW = str(Path(sys.executable).parent / "radflow")
STAGES = ["ingest", "validate", "build_dataset", "train", "evaluate"]


def stages() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def run_dvc(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=120)


def test_dvc_parses_the_pipeline_and_orders_the_stages(tmp_path: Path) -> None:
    repo = tmp_path / "radflow"
    repo.mkdir()
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, repo / name)
    shutil.copytree(ROOT / "data_contracts", repo / "data_contracts")
    assert run_dvc(repo, "init", "--no-scm").returncode == 0
    listed = run_dvc(repo, "stage", "list", "--name-only")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == STAGES
    dag = run_dvc(repo, "dag", "--dot")
    assert dag.returncode == 0, dag.stderr
    edges = {tuple(part.strip().strip('"') for part in line.rstrip(";").split("->"))
             for line in dag.stdout.splitlines() if "->" in line}
    assert {("ingest", "validate"), ("validate", "build_dataset"), ("build_dataset", "train"),
            ("build_dataset", "evaluate")} <= edges


def test_the_stages_are_the_airflow_stages() -> None:
    assert list(stages()) == STAGES


def test_every_params_section_a_stage_names_exists_in_params_yaml() -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for name, stage in stages().items():
        for section in stage.get("params", []):
            assert section in params, f"stage {name} uses params.{section}, missing in params.yaml"


@pytest.mark.parametrize("name", STAGES)
def test_every_stage_runs_an_existing_radflow_subcommand_with_valid_options(name: str) -> None:
    argv = shlex.split(stages()[name]["cmd"])
    assert argv[0] == "radflow" and "--json" in argv
    help_text = subprocess.run([RADFLOW, "--help"], capture_output=True, text=True, timeout=60,
                               check=True).stdout
    listed = set(re.findall(r"^    ([a-z][a-z-]*)\s", help_text, flags=re.M))
    assert argv[1] in listed, f"`radflow {argv[1]}` is not in radflow --help ({sorted(listed)})"
    args = cli.build_parser().parse_args(argv[1:])  # exits (fails the test) on unknown options
    assert args.command == argv[1]


def test_every_dependency_in_the_repository_exists() -> None:
    for name, stage in stages().items():
        for dep in stage.get("deps", []):
            if not dep.startswith(".radflow/"):
                assert (ROOT / dep).exists(), f"stage {name} depends on missing {dep}"
