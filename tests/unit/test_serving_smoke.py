"""The deploy smoke check by precision, against a fake Triton (the boundary) that answers
with onnxruntime's outputs on the same file plus the error a test chooses."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pipelines.errors import DeploymentFailed
from pipelines.serving import repository, smoke
from pipelines.serving.switch import smoke_bound

SIZE = (32, 24)
OP = 0.4

Perturb = Callable[[str, np.ndarray], np.ndarray]


def tiny_classifier(path: Path) -> Path:
    """image [N, 1, H, W] -> probability sigmoid(8 (mean - 0.5)) [N, 1] and heatmap
    sigmoid(8 (avgpool4 - 0.5)) [N, 1, H/4, W/4]: the served model's interface, in 7 nodes."""
    import onnx
    from onnx import TensorProto, helper

    scalar = [helper.make_tensor(n, TensorProto.FLOAT, [], [v]) for n, v in (("half", 0.5), ("gain", 8.0))]
    nodes = [
        helper.make_node("AveragePool", ["image"], ["pooled"], kernel_shape=[4, 4], strides=[4, 4]),
        helper.make_node("Sub", ["pooled", "half"], ["centred"]),
        helper.make_node("Mul", ["centred", "gain"], ["maps"]),
        helper.make_node("Sigmoid", ["maps"], ["heatmap"]),
        helper.make_node("ReduceMean", ["maps"], ["logit4"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Flatten", ["logit4"], ["logit"], axis=1),
        helper.make_node("Sigmoid", ["logit"], ["probability"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 1, *SIZE])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["n", 1]),
         helper.make_tensor_value_info("heatmap", TensorProto.FLOAT, ["n", 1, SIZE[0] // 4, SIZE[1] // 4])],
        initializer=scalar)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


class FakeTriton:
    """Answers infer_outputs with onnxruntime's outputs on the file, passed through `perturb`."""

    def __init__(self, onnx_file: Path, perturb: Perturb) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
        self.perturb = perturb
        self.seen: list[np.ndarray] = []

    def infer_outputs(self, model: str, images: np.ndarray, batch_size: int,
                      version: str = "") -> dict[str, np.ndarray]:
        self.seen.append(images)
        out = self.session.run(["probability", "heatmap"], {"image": images})
        return {name: self.perturb(name, value).astype(np.float32)
                for name, value in zip(("probability", "heatmap"), out, strict=True)}


@pytest.fixture
def onnx_file(tmp_path: Path) -> Path:
    return tiny_classifier(tmp_path / "model.onnx")


def run(onnx_file: Path, profile: repository.Profile, perturb: Perturb,
        operating_point: float = OP) -> tuple[smoke.SmokeReport, FakeTriton]:
    triton = FakeTriton(onnx_file, perturb)
    report = smoke.smoke_check(triton, "mammo_screening", 3, onnx_file, SIZE,  # type: ignore[arg-type]
                               smoke_bound(profile), operating_point, batch_size=16)
    return report, triton


def noise(scale: float, fp16: bool = True) -> Perturb:
    """Uniform noise of +-`scale`, on top of FP16 storage of the outputs when `fp16`."""
    rng = np.random.default_rng(7)

    def perturb(name: str, value: np.ndarray) -> np.ndarray:
        stored = value.astype(np.float16).astype(np.float32) if fp16 else value
        return np.clip(stored + rng.uniform(-scale, scale, value.shape), 0, 1)
    return perturb


def test_each_profile_is_checked_at_the_precision_its_config_serves() -> None:
    gpu = repository.classifier("mammo_screening", "gpu")
    trt = gpu.optimization.execution_accelerators.gpu_execution_accelerator[0]
    assert smoke_bound("gpu").precision == trt.parameters["precision_mode"] == "FP16"
    assert smoke_bound("gpu").tolerance == pytest.approx(2e-2) and smoke_bound("gpu").flags
    assert smoke_bound("cpu") == smoke.SmokeBound("FP32", 1e-4, flags=False)


def test_fp16_noise_within_the_bound_passes_with_inputs_built_around_the_operating_point(
        onnx_file: Path) -> None:
    report, triton = run(onnx_file, "gpu", noise(1e-3))
    assert report.inputs == len(triton.seen[0]) > 2
    assert 1e-4 < max(report.max_diff.values()) <= 2e-2  # would fail the FP32 bound
    below = [g for g in report.near_threshold if g < 0]
    above = [g for g in report.near_threshold if g >= 0]
    # one input on each side, between FLAG_MARGIN and 2 FLAG_MARGIN from the operating point
    assert len(below) == len(above) == 1
    assert all(smoke.FLAG_MARGIN <= abs(g) <= 2 * smoke.FLAG_MARGIN for g in report.near_threshold)


def test_a_difference_beyond_the_fp16_bound_fails_naming_output_difference_and_bound(
        onnx_file: Path) -> None:
    def heatmap_off(name: str, value: np.ndarray) -> np.ndarray:
        return value + (0.05 if name == "heatmap" else 0.0)

    with pytest.raises(DeploymentFailed, match=r"heatmap 5\.00e-02 away .*> 2e-02, FP16 bound"):
        run(onnx_file, "gpu", heatmap_off)


def test_a_flag_flip_at_the_operating_point_fails_even_within_the_bound(onnx_file: Path) -> None:
    def nudge_over(name: str, value: np.ndarray) -> np.ndarray:
        if name != "probability":
            return value
        # everything just under the operating point is served just over it: at most 2e-2 away
        near = (value < OP) & (value >= OP - 1.5e-2)
        return np.where(near, OP + 1e-3, value)

    with pytest.raises(DeploymentFailed, match=r"flags smoke input \d+ differently at the operating point "
                                               r"0\.4000.*within the FP16 bound 2e-02"):
        run(onnx_file, "gpu", nudge_over)


def test_a_flip_is_caught_wherever_the_operating_point_lies(onnx_file: Path) -> None:
    for op in (0.08, 0.5, 0.93):
        def shift_up(name: str, value: np.ndarray, op: float = op) -> np.ndarray:
            just_under = (value < op) & (value >= op - 1.5e-2)
            return np.where(just_under, op, value) if name == "probability" else value

        report, _ = run(onnx_file, "gpu", noise(1e-3), operating_point=op)
        assert len(report.near_threshold) == 2, op
        with pytest.raises(DeploymentFailed, match="differently at the operating point"):
            run(onnx_file, "gpu", shift_up, operating_point=op)


def test_an_operating_point_no_input_reaches_is_checked_on_the_fixed_inputs_only(
        onnx_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    report, _ = run(onnx_file, "gpu", noise(1e-3), operating_point=0.999)
    assert report.near_threshold == () and report.inputs == len(smoke.flag_inputs(*SIZE))
    assert "on one side of the operating point 0.9990" in caplog.text


def test_the_cpu_profile_keeps_its_fp32_check_on_the_two_seeded_inputs(onnx_file: Path) -> None:
    report, triton = run(onnx_file, "cpu", noise(5e-5, fp16=False))
    np.testing.assert_array_equal(triton.seen[0], smoke.smoke_input(*SIZE))
    assert report.inputs == 2 and report.near_threshold == ()
    with pytest.raises(DeploymentFailed, match=r"probability 2\.00e-04 away .*> 1e-04, FP32 bound"):
        run(onnx_file, "cpu", lambda name, v: v + (2e-4 if name == "probability" else 0.0))
    # FP16-level noise, accepted on the gpu profile, is refused on the cpu one
    with pytest.raises(DeploymentFailed, match="FP32 bound"):
        run(onnx_file, "cpu", noise(1e-3))


def test_a_model_that_cannot_answer_the_input_is_not_switched_to(onnx_file: Path) -> None:
    def broken(name: str, value: np.ndarray) -> np.ndarray:
        raise ValueError("output tensor shape does not match size of output")

    with pytest.raises(DeploymentFailed, match=r"failed its smoke inference on input \[2, 1, 32, 24\]"):
        run(onnx_file, "cpu", broken)


def test_an_input_closer_to_the_operating_point_than_fp16_can_tell_is_counted_not_compared(
        onnx_file: Path) -> None:
    import onnxruntime as ort

    fixed = ort.InferenceSession(str(onnx_file)).run(["probability"], {"image": smoke.flag_inputs(*SIZE)})[0]
    op = float(fixed[3, 0]) + 1e-3  # fixed input 3 lies 1e-3 under it

    def flip_closest(name: str, value: np.ndarray) -> np.ndarray:
        return np.where(np.abs(value - op) < 2e-3, op + 1e-3, value) if name == "probability" else value

    report, _ = run(onnx_file, "gpu", flip_closest, operating_point=op)
    assert report.flags_not_compared == 1 and len(report.near_threshold) == 2
