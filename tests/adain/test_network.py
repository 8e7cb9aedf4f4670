"""The AdaIN network: the layer gives exactly the style's channel statistics, its gradient
matches finite differences, alpha = 0 decodes the content features, style weights blend
the aligned features linearly, and any image size comes back the same size."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import styleforge as sf
from styleforge.errors import StyleforgeError
from styleforge.nets.adain import AdaINNet, Decoder, adain, channel_statistics, encoder_widths


@pytest.fixture(scope="module")
def net(weight_files: dict[str, Path]) -> AdaINNet:
    torch.manual_seed(0)
    return AdaINNet(sf.load_vgg19(str(weight_files["pth"]))).eval()


def test_adain_gives_the_styles_channel_statistics() -> None:
    torch.manual_seed(1)
    content = torch.randn(2, 5, 12, 9, dtype=torch.float64) * 3 + 1
    style = torch.randn(2, 5, 7, 16, dtype=torch.float64) * torch.rand(1, 5, 1, 1, dtype=torch.float64) * 4 - 2
    out = adain(content, style, eps=0.0)
    (out_mean, out_std), (s_mean, s_std) = channel_statistics(out, 0.0), channel_statistics(style, 0.0)
    torch.testing.assert_close(out_mean, s_mean, atol=1e-12, rtol=0)
    torch.testing.assert_close(out_std, s_std, atol=1e-12, rtol=1e-10)
    # Normalising away the statistics leaves the content's normalised pattern.
    c_mean, c_std = channel_statistics(content, 0.0)
    torch.testing.assert_close((out - s_mean) / s_std, (content - c_mean) / c_std)


def test_adain_gradient_matches_finite_differences() -> None:
    torch.manual_seed(2)
    content = torch.randn(1, 3, 5, 4, dtype=torch.float64, requires_grad=True)
    style = torch.randn(1, 3, 6, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda c, s: adain(c, s), (content, style))


def test_alpha_zero_decodes_the_content_features(net: AdaINNet) -> None:
    content, style = torch.rand(1, 3, 32, 40) * 255, torch.rand(1, 3, 24, 24) * 255
    with torch.no_grad():
        expected = net.decode(net.encode(content)["relu4_1"])
        got = net.decode(net.target(content, [style], alpha=0.0))
        assert torch.equal(got, expected)
        half = net.target(content, [style], alpha=0.5)
        torch.testing.assert_close(half, 0.5 * net.target(content, [style]) + 0.5 * net.encode(content)["relu4_1"])


def test_style_weights_blend_the_aligned_features(net: AdaINNet) -> None:
    content = torch.rand(1, 3, 32, 32) * 255
    styles = [torch.rand(1, 3, 24, 32) * 255, torch.rand(1, 3, 40, 24) * 255]
    with torch.no_grad():
        first = net.target(content, styles[:1])
        assert torch.equal(net.target(content, styles, [1.0, 0.0]), first)
        blend = net.target(content, styles, [1.0, 3.0])  # normalised to 0.25, 0.75
        torch.testing.assert_close(blend, 0.25 * first + 0.75 * net.target(content, styles[1:]))


def test_any_size_comes_back_the_same_size(net: AdaINNet) -> None:
    style = torch.rand(1, 3, 20, 20) * 255
    with torch.no_grad():
        for size in ((17, 29), (8, 8), (3, 5)):
            out = net(torch.rand(2, 3, *size) * 255, [style])
            assert out.shape == (2, 3, *size) and float(out.min()) >= 0 and float(out.max()) <= 255


def test_decoder_mirrors_the_encoder(net: AdaINNet) -> None:
    widths = encoder_widths(net.encoder)
    features = torch.rand(1, widths[3], 5, 7)
    assert net.decoder(features).shape == (1, 3, 40, 56)
    assert Decoder().widths == (64, 128, 256, 512)


@pytest.mark.parametrize(("call", "fragment"), [
    (lambda n, c, s: n.target(c, []), "at least one style"),
    (lambda n, c, s: n.target(c, [s], alpha=1.5), "alpha must be from 0 to 1"),
    (lambda n, c, s: n.target(c, [s, s], [0.0, 0.0]), "positive sum"),
    (lambda n, c, s: n.target(c, [s], [1.0, 1.0]), "must be 1 numbers"),
    (lambda n, c, s: AdaINNet(n.encoder, Decoder((8, 8, 8, 8))), "trained for encoder widths"),
])
def test_bad_arguments_are_refused(net: AdaINNet, call: object, fragment: str) -> None:
    content, style = torch.rand(1, 3, 16, 16) * 255, torch.rand(1, 3, 16, 16) * 255
    with pytest.raises(StyleforgeError, match=fragment):
        call(net, content, style)  # type: ignore[operator]
