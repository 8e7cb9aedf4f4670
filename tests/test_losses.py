"""Loss functions against independent NumPy computations of the SPEC formulas, their
gradients against finite differences, and the style loss's independence of the style
image's size (both engines)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from styleforge.errors import StyleforgeError
from styleforge.losses.perceptual import content_loss, gram_matrix, style_loss, style_target, total_variation
from styleforge.losses.scales import blend_targets, normalized_layer_weights
from styleforge.numpy_engine.losses import StyleLoss
from styleforge.numpy_engine.losses import style_target as np_style_target

RNG = np.random.default_rng(0)
X = RNG.normal(size=(2, 5, 4, 3))
Y = RNG.normal(size=(2, 5, 4, 3))


def _gram_loops(x: np.ndarray) -> np.ndarray:
    n, c, h, w = x.shape
    g = np.zeros((n, c, c))
    for b in range(n):
        for i in range(c):
            for j in range(c):
                g[b, i, j] = sum(x[b, i, p, q] * x[b, j, p, q] for p in range(h) for q in range(w))
    return g


def test_content_loss_matches_the_spec_formula() -> None:
    n, c, h, w = X.shape
    expected = ((X - Y) ** 2).sum() / (2 * n * c * h * w)
    got = content_loss(torch.from_numpy(X), torch.from_numpy(Y))
    assert float(got) == pytest.approx(expected, rel=1e-12)
    assert float(content_loss(torch.from_numpy(X), torch.from_numpy(Y), "mse")) == pytest.approx(2 * expected)
    assert float(content_loss(torch.from_numpy(X), torch.from_numpy(Y), "sum")) == pytest.approx(expected * n * c * h * w)


def test_gram_matrix_matches_loops() -> None:
    np.testing.assert_allclose(gram_matrix(torch.from_numpy(X)).numpy(), _gram_loops(X), rtol=1e-6)
    h, w = X.shape[2:]
    np.testing.assert_allclose(style_target(torch.from_numpy(X)).numpy(), _gram_loops(X) / (h * w), rtol=1e-6)
    np.testing.assert_allclose(np_style_target(X), _gram_loops(X) / (h * w), rtol=1e-6)


def test_style_loss_with_equal_sizes_is_the_course_formula_3_13() -> None:
    """Same-size style: the per-position form equals the unnormalised formulas exactly."""
    n, c, h, w = X.shape
    g, a = _gram_loops(X), _gram_loops(Y)
    course = ((g - a) ** 2).sum() / (4 * n * c**2 * h**2 * w**2)
    johnson = (((g - a) / (c * h * w)) ** 2).sum() / n
    mse = (((g - a) / (c * h * w)) ** 2).mean()
    target = style_target(torch.from_numpy(Y))
    x = torch.from_numpy(X)
    assert float(style_loss(x, target)) == pytest.approx(course, rel=1e-10)
    assert float(style_loss(x, target, "johnson")) == pytest.approx(johnson, rel=1e-10)
    assert float(style_loss(x, target, "mse")) == pytest.approx(mse, rel=1e-10)


def _tile(a: np.ndarray, times: int = 2) -> np.ndarray:
    """Features repeated ``times`` x ``times`` spatially: the same per-position statistics, times^2 the positions."""
    return np.tile(a, (1, 1, times, times))


def _torch_loss_and_grad(x: np.ndarray, target: np.ndarray, normalization: str) -> tuple[float, np.ndarray]:
    xt = torch.from_numpy(x).requires_grad_(True)
    loss = style_loss(xt, torch.from_numpy(target), normalization)
    loss.backward()
    return float(loss.detach()), xt.grad.numpy()


def _numpy_loss_and_grad(x: np.ndarray, target: np.ndarray, normalization: str) -> tuple[float, np.ndarray]:
    loss = StyleLoss(normalization)
    value = loss.forward(x, target)
    return value, loss.backward()


ENGINES = {"torch": (_torch_loss_and_grad, lambda y: style_target(torch.from_numpy(y)).numpy()),
           "numpy": (_numpy_loss_and_grad, np_style_target)}


@pytest.mark.parametrize("engine", sorted(ENGINES))
@pytest.mark.parametrize("normalization", ["course", "johnson", "mse"])
def test_a_larger_style_image_of_the_same_texture_gives_the_same_loss_and_gradient(engine: str, normalization: str) -> None:
    loss_and_grad, target_of = ENGINES[engine]
    x = RNG.normal(size=(1, 5, 4, 3))
    style = RNG.normal(size=(1, 5, 6, 7))
    small_loss, small_grad = loss_and_grad(x, target_of(style)[0], normalization)
    big_loss, big_grad = loss_and_grad(x, target_of(_tile(style))[0], normalization)
    assert big_loss == pytest.approx(small_loss, rel=1e-10)
    np.testing.assert_allclose(big_grad, small_grad, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("engine", sorted(ENGINES))
@pytest.mark.parametrize("normalization", ["course", "johnson", "mse"])
def test_a_tiled_generated_image_has_the_same_loss(engine: str, normalization: str) -> None:
    """Both sides tiled: per-position statistics unchanged, so the loss is too; each of
    the 4x as many positions gets a quarter of the gradient."""
    loss_and_grad, target_of = ENGINES[engine]
    x, style = RNG.normal(size=(1, 5, 4, 3)), RNG.normal(size=(1, 5, 5, 5))
    loss, grad = loss_and_grad(x, target_of(style)[0], normalization)
    tiled_loss, tiled_grad = loss_and_grad(_tile(x), target_of(style)[0], normalization)
    assert tiled_loss == pytest.approx(loss, rel=1e-10)
    np.testing.assert_allclose(tiled_grad[:, :, :4, :3] * 4, grad, rtol=1e-10, atol=1e-14)


def test_the_numpy_engine_matches_torch_for_a_style_of_another_size() -> None:
    x, style = RNG.normal(size=(2, 5, 4, 3)), RNG.normal(size=(1, 5, 9, 2))
    for normalization in ("course", "johnson", "mse"):
        torch_loss, torch_grad = _torch_loss_and_grad(x, ENGINES["torch"][1](style)[0], normalization)
        numpy_loss, numpy_grad = _numpy_loss_and_grad(x, np_style_target(style)[0], normalization)
        assert numpy_loss == pytest.approx(torch_loss, rel=1e-10)
        np.testing.assert_allclose(numpy_grad, torch_grad, rtol=1e-10, atol=1e-14)


def test_a_blend_of_styles_of_different_sizes_weighs_them_by_the_blend_only() -> None:
    a, b = RNG.normal(size=(1, 5, 4, 4)), RNG.normal(size=(1, 5, 3, 6))
    targets = {"a": style_target(torch.from_numpy(a))[0], "b": style_target(torch.from_numpy(b))[0]}
    b_big = {"l": style_target(torch.from_numpy(_tile(b, 3)))[0]}
    blended = blend_targets([{"l": targets["a"]}, b_big], [0.25, 0.75])["l"]
    torch.testing.assert_close(blended, 0.25 * targets["a"] + 0.75 * targets["b"], rtol=1e-12, atol=1e-12)
    numpy_blend = blend_targets([{"l": np_style_target(a)[0]}, {"l": np_style_target(_tile(b, 3))[0]}], [0.25, 0.75])["l"]
    np.testing.assert_allclose(numpy_blend, blended.numpy(), rtol=1e-12)


def test_style_loss_of_an_image_against_itself_is_zero() -> None:
    x = torch.from_numpy(X).float()
    assert float(style_loss(x[:1], style_target(x[:1])[0])) == 0.0


def test_total_variation_matches_neighbour_differences() -> None:
    img = RNG.random((1, 3, 5, 6))
    dh = img[:, :, 1:, :] - img[:, :, :-1, :]
    dw = img[:, :, :, 1:] - img[:, :, :, :-1]
    t = torch.from_numpy(img)
    assert float(total_variation(t)) == pytest.approx((dh**2).mean() + (dw**2).mean())
    assert float(total_variation(t, "l1")) == pytest.approx(np.abs(dh).mean() + np.abs(dw).mean())
    assert float(total_variation(torch.ones(1, 3, 4, 4))) == 0.0


@pytest.mark.parametrize("name", ["content", "style-course", "style-johnson", "style-mse", "tv", "tv-l1"])
def test_gradients_match_finite_differences(name: str) -> None:
    x = torch.from_numpy(RNG.normal(size=(1, 3, 4, 5))).requires_grad_(True)
    y = torch.from_numpy(RNG.normal(size=(1, 3, 4, 5)))
    target = style_target(torch.from_numpy(RNG.normal(size=(1, 3, 6, 2))))[0]
    fn = {
        "content": lambda v: content_loss(v, y),
        "style-course": lambda v: style_loss(v, target),
        "style-johnson": lambda v: style_loss(v, target, "johnson"),
        "style-mse": lambda v: style_loss(v, target, "mse"),
        "tv": lambda v: total_variation(v),
        "tv-l1": lambda v: total_variation(v, "l1"),
    }[name]
    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_gram_matrix_in_either_layout_matches_loops_and_finite_differences(layout: str) -> None:
    x = torch.from_numpy(RNG.normal(size=(2, 3, 4, 5)))
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
        assert not x.is_contiguous()
    np.testing.assert_allclose(gram_matrix(x).numpy(), _gram_loops(x.numpy()), rtol=1e-12)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(gram_matrix, (x,), eps=1e-6, atol=1e-8)
    # the gradient against an independent closed form, in the features' own layout
    weights = torch.from_numpy(RNG.normal(size=(2, 3, 3)))
    (gram_matrix(x) * weights).sum().backward()
    flat = x.detach().reshape(2, 3, 20)
    expected = ((weights + weights.transpose(1, 2)) @ flat).reshape(x.shape)
    torch.testing.assert_close(x.grad, expected, rtol=1e-12, atol=1e-12)
    assert x.grad.is_contiguous(memory_format=torch.channels_last if layout == "channels_last" else torch.contiguous_format)


def test_half_precision_features_get_a_float32_gram() -> None:
    x = torch.from_numpy(X).to(torch.bfloat16)
    assert gram_matrix(x).dtype == torch.float32


def test_layer_weights_and_blends() -> None:
    assert normalized_layer_weights(["a", "b"], None) == {"a": 0.5, "b": 0.5}
    assert normalized_layer_weights(["a", "b"], [3, 1]) == {"a": 0.75, "b": 0.25}
    with pytest.raises(StyleforgeError, match="2 style layer weights given for 3"):
        normalized_layer_weights(["a", "b", "c"], [1, 1])
    g1, g2 = {"l": torch.ones(2, 2)}, {"l": 3 * torch.ones(2, 2)}
    torch.testing.assert_close(blend_targets([g1, g2], [1, 0])["l"], g1["l"])
    torch.testing.assert_close(blend_targets([g1, g2], [1, 1])["l"], 2 * torch.ones(2, 2))
    torch.testing.assert_close(blend_targets([g1, g2], None)["l"], 2 * torch.ones(2, 2))
    with pytest.raises(StyleforgeError, match="not all zero"):
        blend_targets([g1, g2], [0, 0])
