"""PowerDifference in ONNX: the exported node, ONNX Runtime's native and Python kernels,
the rewrite of existing graphs, and INT8 files holding the node."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from styleforge.deploy.export import export_style_model
from styleforge.deploy.graph_rewrite import rewrite_squared_difference
from styleforge.nets.onnx import OnnxTransformNet
from styleforge.ops.ort_library import ort_include_dir
from styleforge.runtime import custom_ops
from styleforge.runtime.sessions import open_session
from tests.conftest import assert_user_error, make_photo, run_cli
from tests.setup_hints import ort_headers_hint

KERNELS = ["native", "python"]


def _use_kernel(kernel: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if kernel == "python":
        monkeypatch.setenv("STYLEFORGE_NATIVE_OPS", "0")
    elif ort_include_dir() is None:
        if os.environ.get("STYLEFORGE_REQUIRE_NATIVE_OPS") == "1":
            pytest.fail(f"STYLEFORGE_REQUIRE_NATIVE_OPS=1 but ONNX Runtime's headers are missing: {ort_headers_hint()}")
        pytest.skip(f"ONNX Runtime's C++ headers are not here, so only the Python kernel can run: {ort_headers_hint()}")


@pytest.fixture(scope="module")
def exported_pd(style_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_style_model(style_model, tmp_path_factory.mktemp("pd") / "wave_pd.onnx", power_difference=True).path


def _single_node_model(x_shape: list[int], y_shape: list[int], z: float) -> bytes:
    custom_ops.register_schema()
    node = helper.make_node("PowerDifference", ["x", "y"], ["out"], domain="styleforge", z=z)
    graph = helper.make_graph([node], "pd", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape),
                                             helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [None] * max(len(x_shape), len(y_shape)))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("styleforge", 1)])
    model.metadata_props.add(key="styleforge_format", value="test")
    onnx.checker.check_model(model, check_custom_domain=True)
    return model.SerializeToString()


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize(("x_shape", "y_shape"), [([2, 3, 4, 5], [2, 3, 1, 1]), ([2, 3, 4, 5], [5]), ([4, 1], [1, 3]),
                                                  ([2, 3], []), ([2, 3, 4], [2, 3, 4])])
@pytest.mark.parametrize("z", [2.0, 1.0, 3.0])
def test_onnxruntime_kernels_broadcast_like_numpy(kernel: str, x_shape: list[int], y_shape: list[int], z: float,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _use_kernel(kernel, monkeypatch)
    session = open_session(_single_node_model(x_shape, y_shape, z), "cpu", "auto")
    assert f"PowerDifference: {kernel} kernel" in session.description
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=x_shape).astype(np.float32), rng.normal(size=y_shape).astype(np.float32)
    got = session.run({"x": x, "y": y})[0]
    np.testing.assert_allclose(got, (x - y) ** z, rtol=1e-6, atol=1e-6)


def test_export_writes_one_node_per_instance_norm(exported_pd: Path) -> None:
    model = onnx.load(str(exported_pd))
    nodes = [n for n in model.graph.node if n.op_type == "PowerDifference"]
    assert len(nodes) == 15 and all(n.domain == "styleforge" for n in nodes)
    assert not any(n.op_type == "InstanceNormalization" for n in model.graph.node)
    assert ("styleforge", 1) in {(o.domain, o.version) for o in model.opset_import}
    assert all(a.name == "z" and a.f == 2.0 for n in nodes for a in n.attribute)
    custom_ops.register_schema()
    onnx.checker.check_model(model, check_custom_domain=True)


@pytest.mark.parametrize("kernel", KERNELS)
def test_exported_model_runs_and_equals_pytorch(exported_pd: Path, style_model: Path, kernel: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from styleforge.transfer.model import load_style_model

    _use_kernel(kernel, monkeypatch)
    x = torch.rand(2, 3, 37, 29, generator=torch.Generator().manual_seed(4)) * 255
    net = OnnxTransformNet(exported_pd)
    assert f"PowerDifference: {kernel} kernel" in net.device_description
    reference = load_style_model(style_model, device="cpu").net.float()
    with torch.inference_mode():
        expected = torch.cat([reference(x[i : i + 1]) for i in range(2)])
    assert float((net(x) - expected).abs().max()) < 0.05


@pytest.mark.parametrize("kernel", KERNELS)
def test_rewrite_of_a_plain_export_replaces_every_instance_norm_and_keeps_the_output(exported: Path, tmp_path: Path, kernel: str,
                                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _use_kernel(kernel, monkeypatch)
    out = tmp_path / "rewritten.onnx"
    done = run_cli("graph", "rewrite-squared-difference", str(exported), "-o", str(out), env={**os.environ})
    assert done.returncode == 0, done.stderr
    assert "replaced 15 pattern(s) by PowerDifference: 15 instance norm(s)" in done.stdout
    x = torch.rand(1, 3, 33, 41, generator=torch.Generator().manual_seed(5)) * 255
    original, rewritten = OnnxTransformNet(exported, runtime="onnxruntime"), OnnxTransformNet(out)
    assert sum(n.op_type == "PowerDifference" for n in onnx.load(str(out)).graph.node) == 15
    assert float((rewritten(x) - original(x)).abs().max()) < 0.05


def test_rewrite_finds_pow_and_mul_patterns_in_any_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    nodes = [
        helper.make_node("Sub", ["a", "b"], ["d1"]),
        helper.make_node("Pow", ["d1", "two"], ["p"]),
        helper.make_node("Sub", ["a", "c"], ["d2"]),
        helper.make_node("Mul", ["d2", "d2"], ["m"]),
        helper.make_node("Sub", ["b", "c"], ["d3"]),
        helper.make_node("Pow", ["d3", "three"], ["q"]),
        helper.make_node("Add", ["d3", "q"], ["kept"]),  # d3 is read elsewhere: its Sub must stay
    ]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 3]) for n in ("a", "b", "c")]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 3]) for n in ("p", "m", "kept")]
    inits = [numpy_helper.from_array(np.array(2.0, np.float32), "two"), numpy_helper.from_array(np.array(3.0, np.float32), "three")]
    model = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, inits), opset_imports=[helper.make_opsetid("", 18)])
    rewritten, report = rewrite_squared_difference(model)
    assert (report.pow_sub, report.mul_sub, report.instance_norms) == (2, 1, 0)
    kinds = [n.op_type for n in rewritten.graph.node]
    assert kinds.count("PowerDifference") == 3 and kinds.count("Sub") == 1 and "Pow" not in kinds
    monkeypatch.setenv("STYLEFORGE_NATIVE_OPS", "0")
    rng = np.random.default_rng(1)
    feeds = {n: rng.normal(size=(2, 3)).astype(np.float32) for n in ("a", "b", "c")}
    import onnxruntime as ort

    options = ort.SessionOptions()
    custom_ops.register_with_onnxruntime(options)
    got = ort.InferenceSession(rewritten.SerializeToString(), options, providers=["CPUExecutionProvider"]).run(None, feeds)
    expected = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_int8_file_keeps_the_nodes_float_and_runs(exported_pd: Path, tmp_path: Path) -> None:
    from styleforge.config import QuantizeOptions
    from styleforge.deploy.quantize import quantize_model

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        make_photo(photos / f"{i}.png", size=(60, 50), seed=i)
    out = tmp_path / "pd_int8.onnx"
    quantize_model(QuantizeOptions(mean=(0.0,), std=(1.0,), crop=(48, 48), original_models_path=str(exported_pd),
                                   save_model_path=str(out), data_path=str(photos), num_runs=2, output_tensor_names=("stylized",)))
    model = onnx.load(str(out))
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    nodes = [n for n in model.graph.node if n.op_type == "PowerDifference"]
    # The nodes stay PowerDifference on float tensors (an input may come dequantised).
    assert len(nodes) == 15 and all(n.domain == "styleforge" for n in nodes)
    assert not any(producers.get(i) == "QuantizeLinear" for n in nodes for i in n.input)
    x = torch.rand(1, 3, 40, 36, generator=torch.Generator().manual_seed(6)) * 255
    got, reference = OnnxTransformNet(out)(x), OnnxTransformNet(exported_pd)(x)
    assert "onnxruntime" in OnnxTransformNet(out).device_description  # auto never picks OpenVINO for these nodes
    psnr = 10 * np.log10(255**2 / float(((got - reference) ** 2).mean()))
    assert psnr > 25


def test_refusals(exported_pd: Path, exported: Path, tmp_path: Path) -> None:
    nothing = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])), str(nothing))
    assert_user_error(run_cli("graph", "rewrite-squared-difference", str(nothing), "-o", str(tmp_path / "o.onnx")), "has no (X - Y)^2")
    assert_user_error(run_cli("graph", "rewrite-squared-difference", str(exported), "-o", str(tmp_path / "o.txt")), "needs the suffix .onnx")
    image = make_photo(tmp_path / "p.png", size=(20, 20), seed=1)
    assert_user_error(run_cli("transfer", "--model", str(exported_pd), str(image), "-o", str(tmp_path / "o.png"), "--runtime", "openvino"),
                      "OpenVINO has no kernel")
    assert_user_error(run_cli("transfer", "--model", str(exported_pd), str(image), "-o", str(tmp_path / "o.png"), "--power-difference"),
                      "applies to PyTorch models")
    assert not (tmp_path / "o.onnx").exists() and not (tmp_path / "o.png").exists()
