"""Loss functions against independent NumPy computations of the SPEC formulas, and
their gradients against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from styleforge.errors import StyleforgeError
from styleforge.losses import (
    blended_grams,
    content_loss,
    gram_matrix,
    normalized_layer_weights,
    style_loss,
    total_variation,
)

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
    n, c, h, w = X.shape
    np.testing.assert_allclose(gram_matrix(torch.from_numpy(X), normalize=True).numpy(), _gram_loops(X) / (c * h * w), rtol=1e-6)


def test_style_loss_matches_the_spec_formula() -> None:
    n, c, h, w = X.shape
    g, a = _gram_loops(X), _gram_loops(Y)
    course = ((g - a) ** 2).sum() / (4 * n * c**2 * h**2 * w**2)
    johnson = (((g - a) / (c * h * w)) ** 2).sum() / n
    mse = (((g - a) / (c * h * w)) ** 2).mean()
    target = torch.from_numpy(a).float()
    x = torch.from_numpy(X).float()
    assert float(style_loss(x, target)) == pytest.approx(course, rel=1e-5)
    assert float(style_loss(x, target, "johnson")) == pytest.approx(johnson, rel=1e-5)
    assert float(style_loss(x, target, "mse")) == pytest.approx(mse, rel=1e-5)


def test_style_loss_of_an_image_against_itself_is_zero() -> None:
    x = torch.from_numpy(X).float()
    assert float(style_loss(x[:1], gram_matrix(x[:1])[0])) == 0.0


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
    target = gram_matrix(y)[0]
    fn = {
        "content": lambda v: content_loss(v, y),
        "style-course": lambda v: style_loss(v, target),
        "style-johnson": lambda v: style_loss(v, target, "johnson"),
        "style-mse": lambda v: style_loss(v, target, "mse"),
        "tv": lambda v: total_variation(v),
        "tv-l1": lambda v: total_variation(v, "l1"),
    }[name]
    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-7)


def test_half_precision_features_get_a_float32_gram() -> None:
    x = torch.from_numpy(X).to(torch.bfloat16)
    assert gram_matrix(x).dtype == torch.float32


def test_layer_weights_and_blends() -> None:
    assert normalized_layer_weights(["a", "b"], None) == {"a": 0.5, "b": 0.5}
    assert normalized_layer_weights(["a", "b"], [3, 1]) == {"a": 0.75, "b": 0.25}
    with pytest.raises(StyleforgeError, match="2 style layer weights given for 3"):
        normalized_layer_weights(["a", "b", "c"], [1, 1])
    g1, g2 = {"l": torch.ones(2, 2)}, {"l": 3 * torch.ones(2, 2)}
    torch.testing.assert_close(blended_grams([g1, g2], [1, 0])["l"], g1["l"])
    torch.testing.assert_close(blended_grams([g1, g2], [1, 1])["l"], 2 * torch.ones(2, 2))
    with pytest.raises(StyleforgeError, match="not all zero"):
        blended_grams([g1, g2], [0, 0])
