"""The AdaIN network (Huang & Belongie 2017, "Arbitrary style transfer in real-time with
adaptive instance normalization").

``AdaIN(x, y) = sigma(y) (x - mu(x)) / sigma(x) + mu(y)`` per sample and channel, with
``mu``/``sigma`` the spatial mean and standard deviation: the content features take the
style features' channel statistics. The network encodes content and style with VGG19 up
to relu4_1 (frozen, in its weights' own pixel convention), aligns the statistics, blends
with the content features by ``alpha``, and decodes with a mirror of the encoder
(nearest x2 upsampling instead of pooling, reflection padding).

    t = alpha * sum_k w_k AdaIN(f(c), f(s_k)) + (1 - alpha) * f(c)        out = g(t)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from styleforge.errors import StyleforgeError

#: Encoder layers: the decoder inverts relu4_1; the style loss of training uses all four.
ENCODER_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")


def channel_statistics(x: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel mean and standard deviation of (N, C, H, W) features, each (N, C, 1, 1).
    The deviation is ``sqrt(var + eps)`` (population variance), so it is never 0."""
    var, mean = torch.var_mean(x, dim=(2, 3), keepdim=True, unbiased=False)
    return mean, torch.sqrt(var + eps)


def adain(content: torch.Tensor, style: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``content`` (N, C, H, W) with each channel's mean and deviation replaced by ``style``'s
    (N or 1, C, h, w; any spatial size)."""
    if content.shape[1] != style.shape[1]:
        raise StyleforgeError(f"AdaIN needs features of the same channels, got {content.shape[1]} and {style.shape[1]}")
    c_mean, c_std = channel_statistics(content, eps)
    s_mean, s_std = channel_statistics(style, eps)
    return (content - c_mean) / c_std * s_std + s_mean


def _conv(c_in: int, c_out: int, relu: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(c_in, c_out, 3)]
    return layers + [nn.ReLU()] if relu else layers


class Decoder(nn.Sequential):
    """The mirror of VGG19 from relu4_1 down to pixels, for an encoder whose relu1_1..relu4_1
    have ``widths`` = (C1, C2, C3, C4) channels (ImageNet VGG19: 64, 128, 256, 512).
    Outputs pixels in [0, 1] (unclamped; the caller clamps)."""

    def __init__(self, widths: Sequence[int] = (64, 128, 256, 512)) -> None:
        c1, c2, c3, c4 = widths
        up = nn.Upsample(scale_factor=2, mode="nearest")
        super().__init__(
            *_conv(c4, c3), up,
            *_conv(c3, c3), *_conv(c3, c3), *_conv(c3, c3), *_conv(c3, c2), nn.Upsample(scale_factor=2, mode="nearest"),
            *_conv(c2, c2), *_conv(c2, c1), nn.Upsample(scale_factor=2, mode="nearest"),
            *_conv(c1, c1), *_conv(c1, 3, relu=False),
        )
        self.widths = tuple(int(w) for w in widths)


def encoder_widths(vgg: nn.Module) -> tuple[int, int, int, int]:
    """Channels of relu1_1, relu2_1, relu3_1 and relu4_1 of a styleforge VGG19."""
    return tuple(int(getattr(vgg, name.replace("relu", "conv")).out_channels) for name in ENCODER_LAYERS)  # type: ignore[return-value]


class AdaINNet(nn.Module):
    """Encoder (a frozen styleforge VGG19), AdaIN and decoder.

    Args:
        vgg: the encoder; only its layers up to relu4_1 run.
        decoder: a :class:`Decoder` for that encoder's widths (a new one by default).
    """

    def __init__(self, vgg: nn.Module, decoder: Decoder | None = None) -> None:
        super().__init__()
        self.encoder = vgg.eval().requires_grad_(False)
        self.decoder = decoder if decoder is not None else Decoder(encoder_widths(vgg))
        if self.decoder.widths != encoder_widths(vgg):
            raise StyleforgeError(f"the decoder was trained for encoder widths {self.decoder.widths}, "
                                  f"but these VGG19 weights have {encoder_widths(vgg)}")

    def encode(self, pixels: torch.Tensor, layers: Sequence[str] = ("relu4_1",)) -> dict[str, torch.Tensor]:
        """VGG19 features of (N, 3, H, W) RGB 0-255 ``pixels`` at ``layers``."""
        return self.encoder.extract(self.encoder.normalize(pixels / 255.0), list(layers))

    def target(self, content: torch.Tensor, styles: Sequence[torch.Tensor], weights: Sequence[float] | None = None,
               alpha: float = 1.0) -> torch.Tensor:
        """The relu4_1 features to decode: ``alpha * sum_k w_k AdaIN(f(c), f(s_k)) + (1 - alpha) f(c)``.

        Args:
            content: (N, 3, H, W) RGB 0-255.
            styles: style images, each (1 or N, 3, h, w) RGB 0-255, any size.
            weights: one per style, >= 0 with a positive sum (normalised); equal by default.
            alpha: 0 (content features) .. 1 (full style).
        """
        if not styles:
            raise StyleforgeError("give at least one style image")
        mix = _style_weights(weights, len(styles))
        if not 0.0 <= alpha <= 1.0:
            raise StyleforgeError(f"alpha must be from 0 to 1, got {alpha}")
        features = self.encode(content)["relu4_1"]
        aligned = sum(w * adain(features, self.encode(s)["relu4_1"]) for w, s in zip(mix, styles, strict=True))
        return alpha * aligned + (1.0 - alpha) * features

    def decode(self, target: torch.Tensor) -> torch.Tensor:
        """Pixels (RGB 0-255, unclamped) of relu4_1 features."""
        return self.decoder(target) * 255.0

    def forward(self, content: torch.Tensor, styles: Sequence[torch.Tensor], weights: Sequence[float] | None = None,
                alpha: float = 1.0) -> torch.Tensor:
        """Stylise (N, 3, H, W) RGB 0-255 ``content``; any size (padded by edge replication to
        a multiple of 8 for the three poolings, and to at least :data:`MIN_SIDE`, then
        cropped back); returns 0-255, clamped."""
        height, width = content.shape[2:]
        padded = F.pad(content, (0, _padding(width), 0, _padding(height)), mode="replicate")
        out = self.decode(self.target(padded, styles, weights, alpha))
        return out[:, :, :height, :width].clamp(0.0, 255.0)


#: The smallest side the decoder's reflection pads take: relu4_1 (1/8 of it) must be >= 2.
MIN_SIDE = 16


def _padding(side: int) -> int:
    return max(MIN_SIDE, side + (-side % 8)) - side


def _style_weights(weights: Sequence[float] | None, count: int) -> list[float]:
    if weights is None:
        return [1.0 / count] * count
    values = [float(w) for w in weights]
    if len(values) != count or any(not (w >= 0) for w in values) or not sum(values) > 0:
        raise StyleforgeError(f"style weights must be {count} numbers >= 0 with a positive sum, got {list(weights)}")
    total = sum(values)
    return [w / total for w in values]
