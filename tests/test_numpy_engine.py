"""The from-scratch NumPy engine: layers against finite differences and PyTorch autograd,
naive == fast, VGG19 parity with the PyTorch engine, the Gatys loop, and no torch import."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from styleforge.config import GatysOptions
from styleforge.gatys.driver import run_stylize
from styleforge.numpy_engine import (
    LBFGS,
    VGG19,
    Adam,
    ContentLoss,
    Conv2d,
    Linear,
    MaxPool2d,
    ReLU,
    Softmax,
    StyleLoss,
    TotalVariationLoss,
    style_target,
)
from styleforge.numpy_engine.layers import Layer
from styleforge.vgg.network import load_vgg19
from styleforge.vgg.weights.formats import read_weights_file


def numeric_gradient(fn: Callable[[], float], array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar ``fn()`` w.r.t. every entry of ``array`` (modified in place, restored)."""
    grad = np.zeros_like(array)
    flat, gflat = array.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = fn()
        flat[i] = old - eps
        down = fn()
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return grad


def check_layer_gradients(layer: Layer, x: np.ndarray, rng: np.random.Generator) -> None:
    """Backward (input and parameter gradients) against central differences, in float64."""
    y = layer.forward(x)
    projection = rng.normal(size=y.shape)
    dx = layer.backward(projection)
    analytic_params = {k: v.copy() for k, v in layer.grads().items()}

    def objective() -> float:
        return float(np.sum(layer.forward(x) * projection))

    np.testing.assert_allclose(dx, numeric_gradient(objective, x), rtol=1e-6, atol=1e-8)
    for name, param in layer.params().items():
        np.testing.assert_allclose(analytic_params[name], numeric_gradient(objective, param), rtol=1e-6, atol=1e-8)


CONV_CASES = [  # (N, C_in, H, W, C_out, k, stride, padding): odd sizes, strides 1 and 2, padding 0 and 1
    (2, 3, 7, 5, 4, 3, 1, 1),
    (1, 2, 6, 7, 3, 3, 2, 0),
    (2, 2, 5, 5, 2, 3, 2, 1),
    (1, 3, 4, 6, 2, 1, 1, 0),
]


def _conv(case: tuple, impl: str, rng: np.random.Generator) -> tuple[Conv2d, np.ndarray]:
    n, c_in, h, w, c_out, k, stride, padding = case
    layer = Conv2d(c_in, c_out, k, stride=stride, padding=padding, impl=impl, rng=np.random.default_rng(1))
    layer.weight = layer.weight.astype(np.float64)
    layer.bias = rng.normal(size=c_out)
    return layer, rng.normal(size=(n, c_in, h, w))


@pytest.mark.parametrize("impl", ["naive", "fast"])
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_backward_matches_finite_differences(case: tuple, impl: str) -> None:
    rng = np.random.default_rng(0)
    layer, x = _conv(case, impl, rng)
    check_layer_gradients(layer, x, rng)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_naive_equals_fast_and_pytorch(case: tuple) -> None:
    rng = np.random.default_rng(2)
    naive, x = _conv(case, "naive", rng)
    fast, _ = _conv(case, "fast", np.random.default_rng(2))
    fast.bias = naive.bias
    dy_shape = naive.forward(x).shape
    dy = rng.normal(size=dy_shape)
    np.testing.assert_allclose(fast.forward(x), naive.forward(x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fast.backward(dy), naive.backward(dy), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fast.grad_weight, naive.grad_weight, rtol=1e-12, atol=1e-12)
    # PyTorch autograd in float32
    xt = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    wt = torch.tensor(naive.weight, dtype=torch.float32, requires_grad=True)
    bt = torch.tensor(naive.bias, dtype=torch.float32, requires_grad=True)
    yt = F.conv2d(xt, wt, bt, stride=case[6], padding=case[7])
    yt.backward(torch.tensor(dy, dtype=torch.float32))
    fast32 = Conv2d(case[1], case[4], case[5], stride=case[6], padding=case[7])
    fast32.weight, fast32.bias = naive.weight.astype(np.float32), naive.bias.astype(np.float32)
    np.testing.assert_allclose(fast32.forward(x.astype(np.float32)), yt.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fast32.backward(dy.astype(np.float32)), xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fast32.grad_weight, wt.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fast32.grad_bias, bt.grad.numpy(), rtol=1e-4, atol=1e-4)


POOL_CASES = [(2, 2, 6, 8, 2, 2), (1, 3, 7, 5, 2, 2), (1, 2, 7, 7, 3, 2), (2, 1, 5, 6, 3, 1)]  # N, C, H, W, k, stride


@pytest.mark.parametrize("impl", ["naive", "fast"])
@pytest.mark.parametrize("case", POOL_CASES)
def test_maxpool_backward_matches_finite_differences(case: tuple, impl: str) -> None:
    rng = np.random.default_rng(3)
    n, c, h, w, k, s = case
    check_layer_gradients(MaxPool2d(k, s, impl=impl), rng.normal(size=(n, c, h, w)), rng)


@pytest.mark.parametrize("case", POOL_CASES)
def test_maxpool_naive_equals_fast_and_pytorch(case: tuple) -> None:
    rng = np.random.default_rng(4)
    n, c, h, w, k, s = case
    x = rng.normal(size=(n, c, h, w)).astype(np.float32)
    naive, fast = MaxPool2d(k, s, impl="naive"), MaxPool2d(k, s, impl="fast")
    y = fast.forward(x)
    dy = rng.normal(size=y.shape).astype(np.float32)
    np.testing.assert_array_equal(y, naive.forward(x))
    # overlapping windows (k > stride) add into one input in a different order: float32 rounding only
    np.testing.assert_allclose(fast.backward(dy), naive.backward(dy), rtol=1e-6, atol=1e-6)
    xt = torch.tensor(x, requires_grad=True)
    yt = F.max_pool2d(xt, k, s)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy())
    np.testing.assert_allclose(fast.backward(dy), xt.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_maxpool_ties_go_to_the_first_maximum_in_both_impls() -> None:
    x = np.zeros((1, 1, 4, 4), dtype=np.float32)  # every window is a tie
    x[0, 0, 3, 3] = -1.0
    dy = np.arange(1, 5, dtype=np.float32).reshape(1, 1, 2, 2)
    for impl in ("naive", "fast"):
        layer = MaxPool2d(2, 2, impl=impl)
        layer.forward(x)
        dx = layer.backward(dy)
        expected = np.zeros_like(x)
        expected[0, 0, ::2, ::2] = dy[0, 0]  # top-left of each window
        np.testing.assert_array_equal(dx, expected)
    overlapping_x = np.ones((1, 1, 3, 3), dtype=np.float32)
    naive, fast = MaxPool2d(2, 1, impl="naive"), MaxPool2d(2, 1, impl="fast")
    naive.forward(overlapping_x), fast.forward(overlapping_x)
    g = np.ones((1, 1, 2, 2), dtype=np.float32)
    np.testing.assert_array_equal(naive.backward(g), fast.backward(g))


@pytest.mark.parametrize("impl", ["naive", "fast"])
def test_linear_relu_softmax_gradients(impl: str) -> None:
    rng = np.random.default_rng(5)
    linear = Linear(5, 3, impl=impl, rng=np.random.default_rng(6))
    linear.weight, linear.bias = linear.weight.astype(np.float64), linear.bias.astype(np.float64)
    check_layer_gradients(linear, rng.normal(size=(4, 5)), rng)
    x = rng.normal(size=(2, 3, 4, 5))
    x[np.abs(x) < 1e-3] = 0.5  # keep away from the kink
    check_layer_gradients(ReLU(impl=impl), x, rng)
    check_layer_gradients(Softmax(impl=impl), rng.normal(size=(3, 6)), rng)


def test_linear_relu_softmax_match_pytorch_and_naive_equals_fast() -> None:
    rng = np.random.default_rng(7)
    x, dy = rng.normal(size=(4, 6)).astype(np.float32), rng.normal(size=(4, 3)).astype(np.float32)
    for make, torch_fn in [
        (lambda impl: Linear(6, 3, impl=impl, rng=np.random.default_rng(8)), None),
        (lambda impl: ReLU(impl=impl), torch.relu),
        (lambda impl: Softmax(impl=impl), lambda t: torch.softmax(t, dim=1)),
    ]:
        naive, fast = make("naive"), make("fast")
        inp = x if not isinstance(naive, (ReLU, Softmax)) else rng.normal(size=(4, 3)).astype(np.float32)
        np.testing.assert_allclose(fast.forward(inp), naive.forward(inp), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(fast.backward(dy), naive.backward(dy), rtol=1e-5, atol=1e-6)
        xt = torch.tensor(inp, requires_grad=True)
        if torch_fn is None:
            yt = F.linear(xt, torch.tensor(fast.weight), torch.tensor(fast.bias))
        else:
            yt = torch_fn(xt)
        yt.backward(torch.tensor(dy))
        np.testing.assert_allclose(fast.forward(inp), yt.detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(fast.backward(dy), xt.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("normalization", ["course", "johnson", "mse"])
def test_style_loss_value_and_gradient(normalization: str) -> None:
    from styleforge.losses.perceptual import style_loss

    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(1, 3, 4, 5)), rng.normal(size=(1, 3, 4, 5))
    target = style_target(y)[0]
    loss = StyleLoss(normalization)
    value = loss.forward(x, target)
    grad = loss.backward()
    assert value == pytest.approx(float(style_loss(torch.tensor(x), torch.tensor(target), normalization)), rel=1e-10)
    np.testing.assert_allclose(grad, numeric_gradient(lambda: StyleLoss(normalization).forward(x, target), x), rtol=1e-5, atol=1e-10)
    assert StyleLoss().forward(y, target) == 0.0


@pytest.mark.parametrize("normalization", ["course", "mse", "sum"])
def test_content_loss_value_and_gradient(normalization: str) -> None:
    from styleforge.losses.perceptual import content_loss

    rng = np.random.default_rng(10)
    x, y = rng.normal(size=(2, 3, 4, 5)), rng.normal(size=(2, 3, 4, 5))
    loss = ContentLoss(normalization)
    assert loss.forward(x, y) == pytest.approx(float(content_loss(torch.tensor(x), torch.tensor(y), normalization)), rel=1e-12)
    np.testing.assert_allclose(loss.backward(), numeric_gradient(lambda: ContentLoss(normalization).forward(x, y), x), rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("kind", ["l2", "l1"])
def test_total_variation_value_and_gradient(kind: str) -> None:
    from styleforge.losses.perceptual import total_variation

    rng = np.random.default_rng(11)
    x = rng.random((1, 3, 5, 6))
    loss = TotalVariationLoss(kind)
    assert loss.forward(x) == pytest.approx(float(total_variation(torch.tensor(x), kind)), rel=1e-12)
    np.testing.assert_allclose(loss.backward(), numeric_gradient(lambda: TotalVariationLoss(kind).forward(x), x), rtol=1e-5, atol=1e-9)


def test_adam_matches_torch() -> None:
    rng = np.random.default_rng(12)
    x = rng.normal(size=(3, 4)).astype(np.float64)
    xt = torch.tensor(x, requires_grad=True)
    opt = torch.optim.Adam([xt], lr=0.1, betas=(0.9, 0.999), eps=1e-8)
    adam = Adam(lr=0.1)
    for _ in range(5):
        g = rng.normal(size=x.shape)
        x = adam.step(x, g)
        xt.grad = torch.tensor(g)
        opt.step()
    np.testing.assert_allclose(x, xt.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("fmt", ["pth", "mat"])
def test_vgg19_features_and_gradients_match_pytorch(weight_files: dict[str, Path], fmt: str) -> None:
    bundle = read_weights_file(weight_files[fmt])
    ours = VGG19(bundle)
    reference = load_vgg19(str(weight_files[fmt]))
    rng = np.random.default_rng(13)
    pixels = rng.random((1, 3, 64, 64)).astype(np.float32)
    names = ["conv1_1", "relu2_1", "pool3", "conv4_2", "relu5_1", "fc8", "softmax"]
    feats = ours.extract(ours.normalize(pixels), names)
    xt = torch.tensor(pixels, requires_grad=True)
    ref = reference.extract(reference.normalize(xt), names)
    for name in names:
        scale = float(ref[name].detach().abs().max())
        np.testing.assert_allclose(feats[name], ref[name].detach().numpy(), rtol=1e-4, atol=1e-4 * scale)
    # backward from several layers at once down to the [0, 1] pixels
    weights = {"conv4_2": rng.normal(size=feats["conv4_2"].shape).astype(np.float32),
               "relu2_1": rng.normal(size=feats["relu2_1"].shape).astype(np.float32)}
    grad = ours.normalize_backward(ours.backward(weights))
    (sum((ref[k] * torch.tensor(v)).sum() for k, v in weights.items())).backward()
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-3, atol=1e-3 * float(xt.grad.abs().max()))


def test_vgg19_naive_equals_fast_on_a_small_input(weight_files: dict[str, Path]) -> None:
    bundle = read_weights_file(weight_files["pth"])
    x = np.random.default_rng(14).random((1, 3, 32, 32)).astype(np.float64)
    fast = VGG19(bundle, impl="fast", dtype=np.float64)
    naive = VGG19(bundle, impl="naive", dtype=np.float64)
    a, b = fast.extract(x, ["relu3_1"])["relu3_1"], naive.extract(x, ["relu3_1"])["relu3_1"]
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    g = np.ones_like(a)
    np.testing.assert_allclose(fast.backward({"relu3_1": g}), naive.backward({"relu3_1": g}), rtol=1e-10, atol=1e-12)


def _gatys_losses(engine: str, weights: Path, **changes: object) -> list[float]:
    from PIL import Image

    rng = np.random.default_rng(15)
    content = Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8))
    style = Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8))
    settings: dict[str, object] = dict(size=56, iterations=10, optimizer="adam", weights=str(weights), engine=engine,
                                       device="cpu", init="noise", tv_weight=0.5, precision="fp32")  # parity: fp32 on any CPU
    settings.update(changes)
    opts = GatysOptions(**settings)  # type: ignore[arg-type]
    return run_stylize(content, style, opts, progress=False).history.column("total")


@pytest.mark.parametrize("fmt", ["pth", "mat"])
def test_numpy_gatys_loss_falls_and_matches_the_torch_engine(weight_files: dict[str, Path], fmt: str) -> None:
    numpy_losses = _gatys_losses("numpy", weight_files[fmt])
    torch_losses = _gatys_losses("torch", weight_files[fmt])
    assert numpy_losses[-1] < 0.7 * numpy_losses[0]
    np.testing.assert_allclose(numpy_losses[:5], torch_losses[:5], rtol=1e-4)


def test_numpy_lbfgs_matches_the_torch_engine(weight_files: dict[str, Path]) -> None:
    numpy_losses = _gatys_losses("numpy", weight_files["pth"], optimizer="lbfgs")
    torch_losses = _gatys_losses("torch", weight_files["pth"], optimizer="lbfgs")
    assert numpy_losses[-1] < 0.7 * numpy_losses[0]
    np.testing.assert_allclose(numpy_losses[:5], torch_losses[:5], rtol=1e-4)


def test_lbfgs_follows_torch_lbfgs_on_a_quadratic() -> None:
    rng = np.random.default_rng(16)
    a = rng.normal(size=(6, 6))
    hessian = a @ a.T + np.eye(6)
    b = rng.normal(size=6)
    x = np.zeros(6)
    xt = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([xt], lr=0.5, max_iter=1, history_size=3, tolerance_grad=-1, tolerance_change=-1)
    ours = LBFGS(lr=0.5, history_size=3)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = 0.5 * xt @ torch.tensor(hessian) @ xt - torch.tensor(b) @ xt
        loss.backward()
        return loss

    for _ in range(8):
        x = ours.step(x, hessian @ x - b)
        opt.step(closure)
        np.testing.assert_allclose(x, xt.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_engine_imports_and_runs_with_torch_unimportable(weight_files: dict[str, Path], tmp_path: Path) -> None:
    script = f"""
import sys
sys.modules["torch"] = None  # any 'import torch' now raises ImportError
import styleforge.numpy_engine as ne
from styleforge.gatys.driver import run_stylize
from styleforge.config import GatysOptions
from PIL import Image
img = Image.new("RGB", (40, 32), (120, 80, 40))
r = run_stylize(img, img.transpose(Image.Transpose.ROTATE_180), GatysOptions(size=32, iterations=2, optimizer="adam",
                weights={str(weight_files["mat"])!r}, engine="numpy"), progress=False)
assert r.image.size == (32, 26), r.image.size
img.save({str(tmp_path / "cat.png")!r})
from styleforge.classify import classify_files
from styleforge.config import ClassifyOptions
report = classify_files([{str(tmp_path / "cat.png")!r}], ClassifyOptions(weights={str(weight_files["mat"])!r}, size=64, engine="numpy"))
assert len(report.predictions[0]) == 5 and report.engine == "numpy"
assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules if sys.modules[m] is not None)
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
