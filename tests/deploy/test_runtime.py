"""Runtimes of exported files: ONNX Runtime and OpenVINO behind one session interface,
the runtime ``auto`` picks, and tiled stylisation of ``.onnx`` models with the whole
image's instance-norm statistics (derived graphs checked against PyTorch)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from styleforge.config import TransferOptions
from styleforge.errors import StyleforgeError
from styleforge.images.tensors import images_to_tensor
from styleforge.nets.onnx import OnnxTransformNet
from styleforge.nets.transform_net import InstanceNorm
from styleforge.runtime import sessions
from styleforge.runtime.norm_graphs import MEAN, VAR, frozen_statistics_graph, instance_norm_nodes, statistics_graph
from styleforge.transfer.model import load_style_model
from styleforge.transfer.tiles import stylize_tiled
from tests.conftest import make_photo, run_cli


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Image.Image:
    path = make_photo(tmp_path_factory.mktemp("photo") / "p.png", size=(150, 110), seed=5)
    return Image.open(path).convert("RGB")


def test_statistics_graph_outputs_what_pytorch_records(style_model: Path, exported: Path, photo: Image.Image) -> None:
    net = load_style_model(style_model, options=TransferOptions(device="cpu", precision="fp32")).net
    x = images_to_tensor([photo], torch.device("cpu"))
    with torch.inference_mode():
        net.record_norm_statistics(x)
    recorded = [m.stats for m in net.modules() if isinstance(m, InstanceNorm)]
    net.clear_norm_statistics()
    onnx_net = OnnxTransformNet(exported, runtime="onnxruntime")
    onnx_net.record_norm_statistics(x)
    assert len(recorded) == 15 and onnx_net.norm_statistics is not None
    for i, (mean, var) in enumerate(recorded):
        np.testing.assert_allclose(onnx_net.norm_statistics[MEAN.format(i)], mean.numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(onnx_net.norm_statistics[VAR.format(i)], var.numpy(), rtol=1e-3, atol=1e-4)


def test_frozen_graph_with_the_image_own_statistics_equals_the_plain_graph(exported: Path, photo: Image.Image) -> None:
    onnx_net = OnnxTransformNet(exported, runtime="onnxruntime")
    x = images_to_tensor([photo], torch.device("cpu"))
    plain = onnx_net(x)
    onnx_net.record_norm_statistics(x)
    frozen = onnx_net(x)  # the same image normalised with its recorded statistics
    onnx_net.clear_norm_statistics()
    assert float((frozen - plain).abs().max()) < 0.05
    model = onnx.load(str(exported))
    derived = frozen_statistics_graph(model)
    assert not instance_norm_nodes(derived) and sum(n.op_type == "BatchNormalization" for n in derived.graph.node) == 15
    assert len(statistics_graph(model).graph.output) == 1 + 2 * 15


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_onnx_tiles_match_pytorch_tiles(style_model: Path, exported: Path, photo: Image.Image, runtime: str) -> None:
    x = images_to_tensor([photo], torch.device("cpu"))
    net = load_style_model(style_model, options=TransferOptions(device="cpu", precision="fp32")).net
    with torch.inference_mode():
        expected = stylize_tiled(net, x, tile=64, overlap=16, stats_pixels=10_000)
    got = stylize_tiled(OnnxTransformNet(exported, runtime=runtime), x, tile=64, overlap=16, stats_pixels=10_000)
    assert float((got - expected).abs().max()) < 0.1  # grey levels; the statistics come from a downscaled copy


def test_cli_transfer_tiles_an_onnx_model(style_model: Path, exported: Path, tmp_path: Path) -> None:
    source = make_photo(tmp_path / "in.png", size=(140, 100), seed=6)
    for model, out in ((style_model, "pt.png"), (exported, "onnx.png")):
        done = run_cli("transfer", "--model", str(model), str(source), "-o", str(tmp_path / out), "--tile", "64",
                       "--precision", "fp32", "--device", "cpu")
        assert done.returncode == 0, done.stderr
    a, b = (np.asarray(Image.open(tmp_path / n), dtype=float) for n in ("pt.png", "onnx.png"))
    assert np.abs(a - b).max() <= 1  # rounding to 8 bits only


def test_openvino_and_onnxruntime_agree_on_the_float_file(exported: Path, photo: Image.Image) -> None:
    x = images_to_tensor([photo], torch.device("cpu"))
    ort, ov = (OnnxTransformNet(exported, runtime=r) for r in ("onnxruntime", "openvino"))
    assert "onnxruntime" in ort.device_description and "openvino" in ov.device_description
    assert float((ort(x) - ov(x)).abs().max()) < 0.05  # fp32 on both: OpenVINO's bf16 default is switched off


def test_auto_picks_openvino_for_int8_files_only(monkeypatch: pytest.MonkeyPatch) -> None:
    int8 = {"quantization": json.dumps({"quantization_type": "int8"})}
    int16 = {"quantization": json.dumps({"quantization_type": "int16"})}
    assert sessions.choose_runtime("auto", "cpu", int8) == "openvino"
    assert sessions.choose_runtime("auto", "cpu", int16) == "onnxruntime"
    assert sessions.choose_runtime("auto", "cpu", {}) == "onnxruntime"
    assert sessions.choose_runtime("onnxruntime", "cpu", int8) == "onnxruntime"
    assert sessions.choose_runtime("openvino", "cpu", {}) == "openvino"
    with pytest.raises(StyleforgeError, match="runs on the CPU"):
        sessions.choose_runtime("openvino", "cuda", int8)
    monkeypatch.setattr(sessions, "openvino_available", lambda: False)
    assert sessions.choose_runtime("auto", "cpu", int8) == "onnxruntime"  # falls back when OpenVINO is not installed


def test_openvino_compiles_a_repeated_shape_once_with_the_same_result(exported: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    session = sessions.open_session(exported, "cpu", "openvino")
    monkeypatch.setattr(sessions.OpenVinoSession, "STATIC_SHAPES", 2)
    rng = np.random.default_rng(3)
    x = (rng.random((1, 3, 40, 56)) * 255).astype(np.float32)
    first = session.run({"image": x})[0]  # the dynamic model
    second = session.run({"image": x})[0]  # compiled for (1, 3, 40, 56)
    assert len(session.static) == 1 and float(np.abs(first - second).max()) < 0.05
    for shape in ((1, 3, 24, 32), (1, 3, 32, 24)):
        y = (rng.random(shape) * 255).astype(np.float32)
        session.run({"image": y})
        session.run({"image": y})
    assert list(session.static) == [((1, 3, 24, 32),), ((1, 3, 32, 24),)]  # the oldest shape was dropped


def test_threads_share_an_openvino_session_with_each_its_own_result(exported: Path) -> None:
    """The web service's job threads call one loaded model at once: every call gets the
    result of its own input, as when the calls run one after another."""
    import threading

    session = sessions.open_session(exported, "cpu", "openvino")
    rng = np.random.default_rng(5)
    inputs = [(rng.random(shape) * 255).astype(np.float32) for shape in ((1, 3, 40, 56), (1, 3, 40, 56), (1, 3, 24, 32))] * 2
    alone = [session.run({"image": x})[0] for x in inputs]
    together: list[np.ndarray | None] = [None] * len(inputs)

    def work(index: int) -> None:
        for _ in range(3):
            together[index] = session.run({"image": inputs[index]})[0]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for got, expected in zip(together, alone, strict=True):
        assert got is not None and got.shape == expected.shape and float(np.abs(got - expected).max()) < 0.05


def test_signals_still_work_after_openvino_sessions_are_gone(exported: Path) -> None:
    """Two OpenVINO sessions (a model and its statistics graph) destroyed, then a signal:
    with one Core per session this segfaulted; with the process's one Core it is handled."""
    import subprocess
    import sys

    code = (
        "import gc, os, signal, sys, time, torch\n"
        "from styleforge.nets.onnx import OnnxTransformNet\n"
        "net = OnnxTransformNet(sys.argv[1], runtime='openvino')\n"
        "x = torch.rand(1, 3, 40, 40) * 255\n"
        "net(x); net.record_norm_statistics(x); net(x)\n"
        "del net; gc.collect()\n"
        "got = []\n"
        "signal.signal(signal.SIGUSR1, lambda *a: got.append(1))\n"
        "os.kill(os.getpid(), signal.SIGUSR1); time.sleep(0.2)\n"
        "assert got == [1]\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(exported)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
