"""The AdaIN network (Huang & Belongie 2017, "Arbitrary style transfer in real-time with
adaptive instance normalization").

``AdaIN(x, y) = sigma(y) (x - mu(x)) / sigma(x) + mu(y)`` per sample and channel, with
``mu``/``sigma`` the spatial mean and standard deviation: the content features take the
style features' channel statistics. The network encodes content and style with VGG19 up
to relu4_1 (frozen, in its weights' own pixel convention), aligns the statistics, blends
with the content features by ``alpha``, and decodes with a mirror of the encoder
(nearest x2 upsampling instead of pooling, reflection padding).

    t = alpha * sum_k w_k AdaIN(f(c), f(s_k)) + (1 - alpha) * f(c)        out = g(t)

AdaIN is affine in the style statistics, so blending styles blends their (mean, std)
(:func:`blend_statistics`): a fixed style is two (1, C, 1, 1) tensors, which is all a
saved transfer or an exported graph needs of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from styleforge.errors import StyleforgeError
from styleforge.utils.limits import ADAIN_MIN_SIDE

#: Encoder layers: the decoder inverts relu4_1; the style loss of training uses all four.
ENCODER_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")


def channel_statistics(x: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel mean and standard deviation of (N, C, H, W) features, each (N, C, 1, 1).
    The deviation is ``sqrt(var + eps)`` (population variance), so it is never 0."""
    var, mean = torch.var_mean(x, dim=(2, 3), keepdim=True, unbiased=False)
    return mean, torch.sqrt(var + eps)


Statistics = tuple[torch.Tensor, torch.Tensor]


def align(features: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, content_statistics: Statistics | None = None,
          eps: float = 1e-5) -> torch.Tensor:
    """``features`` (N, C, H, W) renormalised to channel ``mean`` and ``std`` (N or 1, C, 1, 1).

    ``content_statistics`` replaces the features' own mean and deviation: tiles of a large
    image use the whole image's (recorded once), so every tile gets the same affine map."""
    c_mean, c_std = content_statistics if content_statistics is not None else channel_statistics(features, eps)
    return (features - c_mean) / c_std * std + mean


def adain(content: torch.Tensor, style: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``content`` (N, C, H, W) with each channel's mean and deviation replaced by ``style``'s
    (N or 1, C, h, w; any spatial size)."""
    if content.shape[1] != style.shape[1]:
        raise StyleforgeError(f"AdaIN needs features of the same channels, got {content.shape[1]} and {style.shape[1]}")
    return align(content, *channel_statistics(style, eps), eps=eps)


def blend_statistics(statistics: Sequence[Statistics], weights: Sequence[float] | None = None) -> Statistics:
    """One (mean, std) from several styles' statistics and their weights (normalised; equal
    by default). AdaIN is affine in the style's statistics, so aligning to the blended
    statistics equals blending the aligned features: ``sum_k w_k AdaIN(x, s_k)``."""
    if not statistics:
        raise StyleforgeError("give at least one style image")
    mix = style_weights(weights, len(statistics))
    mean = sum(w * m for w, (m, _) in zip(mix, statistics, strict=True))
    std = sum(w * s for w, (_, s) in zip(mix, statistics, strict=True))
    return mean, std  # type: ignore[return-value]


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
    """Encoder (a frozen styleforge VGG19, cut after conv4_1), AdaIN and decoder.

    Args:
        vgg: the encoder's weights (a full VGG19 is cut; only its layers to relu4_1 run).
        decoder: a :class:`Decoder` for that encoder's widths (a new one by default).
    """

    def __init__(self, vgg: nn.Module, decoder: Decoder | None = None) -> None:
        super().__init__()
        encoder = vgg if vgg.last_conv == ENCODER_LAST_CONV else vgg.truncated(ENCODER_LAST_CONV)
        self.encoder = encoder.eval().requires_grad_(False)
        self.decoder = decoder if decoder is not None else Decoder(encoder_widths(encoder))
        if self.decoder.widths != encoder_widths(encoder):
            raise StyleforgeError(f"the decoder was trained for encoder widths {self.decoder.widths}, "
                                  f"but these VGG19 weights have {encoder_widths(encoder)}")

    def encode(self, pixels: torch.Tensor, layers: Sequence[str] = ("relu4_1",)) -> dict[str, torch.Tensor]:
        """VGG19 features of (N, 3, H, W) RGB 0-255 ``pixels`` at ``layers``."""
        return self.encoder.extract(self.encoder.normalize(pixels / 255.0), list(layers))

    def style_statistics(self, style: torch.Tensor) -> Statistics:
        """relu4_1 channel (mean, std) of (N, 3, h, w) RGB 0-255 style images, each (N, C, 1, 1)."""
        return channel_statistics(self.encode(style)["relu4_1"])

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
        mean, std = blend_statistics([self.style_statistics(s) for s in styles], weights)
        return self.target_from_statistics(self.encode(content)["relu4_1"], mean, std, alpha)

    @staticmethod
    def target_from_statistics(features: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, alpha: float = 1.0,
                               content_statistics: Statistics | None = None) -> torch.Tensor:
        """``alpha * align(features, mean, std) + (1 - alpha) * features`` (relu4_1 features)."""
        check_alpha(alpha)
        return alpha * align(features, mean, std, content_statistics) + (1.0 - alpha) * features

    def decode(self, target: torch.Tensor) -> torch.Tensor:
        """Pixels (RGB 0-255, unclamped) of relu4_1 features."""
        return self.decoder(target) * 255.0

    def forward(self, content: torch.Tensor, styles: Sequence[torch.Tensor], weights: Sequence[float] | None = None,
                alpha: float = 1.0) -> torch.Tensor:
        """Stylise (N, 3, H, W) RGB 0-255 ``content``; any size (:func:`pad_for_decoder`);
        returns 0-255, clamped."""
        padded, crop = pad_for_decoder(content)
        return crop(self.decode(self.target(padded, styles, weights, alpha))).clamp(0.0, 255.0)


class AdaINStylizer(nn.Module):
    """An :class:`AdaINNet` with its style fixed: ``net(x)`` stylises (N, 3, H, W) RGB 0-255
    images like a :class:`~styleforge.nets.transform_net.TransformNet`, and tiles of a large
    image share the whole image's content statistics (:meth:`record_norm_statistics`).

    Args:
        net: the trained network.
        mean: the (blended) style statistics at relu4_1, (1, C, 1, 1).
        std: the (blended) style statistics at relu4_1, (1, C, 1, 1).
        alpha: content-style trade-off, 0 .. 1.
    """

    #: Tile crops must start on this grid: the encoder pools three times by 2.
    alignment = 8

    def __init__(self, net: AdaINNet, mean: torch.Tensor, std: torch.Tensor, alpha: float = 1.0) -> None:
        super().__init__()
        check_alpha(alpha)
        self.net, self.alpha = net, float(alpha)
        self.register_buffer("style_mean", mean.detach().reshape(1, -1, 1, 1).float())
        self.register_buffer("style_std", std.detach().reshape(1, -1, 1, 1).float())
        self.content_statistics: Statistics | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Stylised ``x`` (0-255, clamped), the same size."""
        padded, crop = pad_for_decoder(x)
        features = self.net.encode(padded)["relu4_1"]
        mean, std = self.style_mean.to(features.dtype), self.style_std.to(features.dtype)
        target = self.net.target_from_statistics(features, mean, std, self.alpha, self.content_statistics)
        return crop(self.net.decode(target)).clamp(0.0, 255.0)

    def record_norm_statistics(self, x: torch.Tensor) -> None:
        """Use the content statistics of the whole image ``x`` for every later call (taken
        on ``x`` padded as :meth:`forward` pads it)."""
        self.content_statistics = channel_statistics(self.net.encode(pad_for_decoder(x)[0])["relu4_1"])

    def clear_norm_statistics(self) -> None:
        """Go back to each input's own content statistics."""
        self.content_statistics = None


#: The last VGG19 convolution the encoder needs (relu4_1 is its output).
ENCODER_LAST_CONV = "conv4_1"

#: The smallest side the decoder's reflection pads take: relu4_1 (1/8 of it) must be >= 2.
MIN_SIDE = ADAIN_MIN_SIDE


def pad_for_decoder(x: torch.Tensor) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """``x`` padded by edge replication (right and bottom) to a multiple of 8 for the three
    poolings and to at least :data:`MIN_SIDE`, and the crop that takes an output back to ``x``'s size."""
    height, width = x.shape[2:]
    padded = F.pad(x, (0, _padding(width), 0, _padding(height)), mode="replicate")
    return padded, lambda y: y[:, :, :height, :width]


def _padding(side: int) -> int:
    return max(MIN_SIDE, side + (-side % 8)) - side


def check_alpha(alpha: float) -> None:
    """Raise unless ``0 <= alpha <= 1``."""
    if not 0.0 <= alpha <= 1.0:
        raise StyleforgeError(f"alpha must be from 0 to 1, got {alpha}")


def style_weights(weights: Sequence[float] | None, count: int) -> list[float]:
    """``count`` style weights normalised to sum 1 (equal when ``weights`` is None).

    Raises:
        StyleforgeError: the wrong count, a negative or non-number weight, or a zero sum."""
    if weights is None:
        return [1.0 / count] * count
    values = [float(w) for w in weights]
    if len(values) != count or any(not (w >= 0) for w in values) or not sum(values) > 0:
        raise StyleforgeError(f"style weights must be {count} numbers >= 0 with a positive sum, got {list(weights)}")
    total = sum(values)
    return [w / total for w in values]
