"""The Triton repository generator: both profiles are valid Triton configs, from one source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as pb

from pipelines import cli
from pipelines.serving import repository

REVIEWED = Path(__file__).resolve().parents[2] / "serving" / "triton_repo"


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_every_generated_config_parses_as_a_triton_model_config(profile: str, tmp_path: Path) -> None:
    written = repository.generate(tmp_path, profile, "mammo_screening", 128, 96)  # type: ignore[arg-type]
    assert {p.parent.name for p in written} == {"mammo_screening", "mammo_preprocessing",
                                                 "mammo_screening_ensemble"}
    for path in written:
        config = text_format.Parse(path.read_text(), pb.ModelConfig())
        assert config.name == path.parent.name


def test_the_cpu_profile_runs_onnxruntime_in_the_python_backend_on_cpu() -> None:
    c = repository.parse(repository.render(repository.classifier("mammo_screening", "cpu")))
    assert c.backend == "python" and c.max_batch_size == 32
    assert [g.kind for g in c.instance_group] == [pb.ModelInstanceGroup.KIND_CPU]
    assert c.dynamic_batching.max_queue_delay_microseconds > 0
    assert not c.optimization.execution_accelerators.gpu_execution_accelerator
    assert [(t.name, list(t.dims)) for t in c.output] == [("probability", [1]), ("heatmap", [1, -1, -1])]


def test_the_gpu_profile_runs_the_onnx_file_with_tensorrt_on_the_gpu() -> None:
    c = repository.parse(repository.render(repository.classifier("mammo_screening", "gpu"), "gpu"))
    assert (c.backend, c.default_model_filename) == ("onnxruntime", "model.onnx")
    assert [g.kind for g in c.instance_group] == [pb.ModelInstanceGroup.KIND_GPU]
    trt = c.optimization.execution_accelerators.gpu_execution_accelerator
    assert [a.name for a in trt] == ["tensorrt"] and trt[0].parameters["precision_mode"] == "FP16"
    cpu = repository.classifier("mammo_screening", "cpu")
    # one source: the serving contract (inputs, outputs, batching) is the same in both
    assert (list(c.input), list(c.output), c.max_batch_size, c.dynamic_batching) == \
        (list(cpu.input), list(cpu.output), cpu.max_batch_size, cpu.dynamic_batching)


def test_deploy_pins_the_served_versions() -> None:
    both = repository.parse(repository.render(repository.classifier("m", "cpu", [4, 3, 4])))
    assert list(both.version_policy.specific.versions) == [3, 4]
    latest = repository.parse(repository.render(repository.classifier("m", "cpu")))
    assert latest.version_policy.latest.num_versions == 1


def test_the_ensemble_feeds_preprocessing_into_the_serving_classifier() -> None:
    e = repository.ensemble("mammo_screening", 128, 96)
    steps = [(s.model_name, s.model_version) for s in e.ensemble_scheduling.step]
    assert steps == [("mammo_preprocessing", -1), ("mammo_screening", -1)]
    pre = repository.preprocessing(128, 96)
    assert [list(t.dims) for t in pre.output] == [[1, 1, 128, 96]]
    assert pre.parameters["height"].string_value == "128" and pre.parameters["width"].string_value == "96"
    produced = set(e.ensemble_scheduling.step[0].output_map.values())
    assert set(e.ensemble_scheduling.step[1].input_map.values()) <= produced


def test_an_unknown_field_is_refused_when_parsed() -> None:
    text = repository.render(repository.classifier("m", "cpu")) + "\nmax_batch_sise: 4\n"
    with pytest.raises(text_format.ParseError, match="max_batch_sise"):
        repository.parse(text)


def test_the_committed_configs_are_the_generators_cpu_output(tmp_path: Path) -> None:
    repository.generate(tmp_path, "cpu", "mammo_screening", 128, 96)
    for path in sorted(tmp_path.glob("*/config.pbtxt")):
        committed = REVIEWED / path.parent.name / "config.pbtxt"
        assert committed.read_text() == path.read_text(), \
            f"{committed} differs from the generator: run `radflow serving-repo --out serving/triton_repo`"


def test_cli_writes_a_gpu_repository(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "gpu-repo"
    assert cli.main(["serving-repo", "--profile", "gpu", "--out", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["profile"] == "gpu" and len(printed["configs"]) == 3
    assert 'backend: "onnxruntime"' in (out / "mammo_screening" / "config.pbtxt").read_text()
