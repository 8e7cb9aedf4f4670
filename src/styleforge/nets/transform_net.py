"""The image transformation network of feed-forward style transfer (Johnson, Alahi & Fei-Fei
2016; the course's table 4.3).

=====================================  ==============================
layer                                  output (input 3 x H x W)
=====================================  ==============================
32 9x9 conv, stride 1                  32 x H x W
64 3x3 conv, stride 2                  64 x H/2 x W/2
128 3x3 conv, stride 2                 128 x H/4 x W/4
5 residual blocks (two 128 3x3 convs)  128 x H/4 x W/4
upsample x2, 64 3x3 conv               64 x H/2 x W/2
upsample x2, 32 3x3 conv               32 x H x W
3 9x9 conv, tanh scaled to [0, 255]    3 x H x W
=====================================  ==============================

Every convolution but the last is followed by normalisation (instance norm by default,
Ulyanov et al. 2016; or batch norm as in the original) and ReLU; residual blocks are
conv-norm-ReLU-conv-norm plus the identity, with no ReLU after the sum (Gross & Wilber).

Choices (documented in the README):

* Padding: every convolution reflection-pads its own input so sizes are kept, instead of
  the table's single 40-pixel mirror at the input with unpadded residual convolutions.
  The two compute the same kind of function; per-layer padding keeps feature maps
  aligned with the image and needs no cropping inside residual blocks.
* Upsampling: ``resize`` (default) is nearest-neighbour x2 then a 3x3 convolution,
  which avoids the checkerboard artefacts of transposed convolutions (Odena, Dumoulin &
  Olah 2016, "Deconvolution and checkerboard artifacts"); ``deconv`` is the course's
  fractionally strided convolution (3x3, stride 2, output padding 1).
* Sizes: the input is reflection-padded on the right and bottom to a multiple of 4 (and
  at least 8; replicated where the image is too small to reflect) and the output cropped
  back, so any H x W, odd or 1x1 included, comes out the same size.
* Input and output are RGB 0-255, NCHW; the input is divided by ``input_divisor`` (255:
  the network sees [0, 1]) and the output is ``tanh`` scaled to [0, 255]. Networks
  trained elsewhere keep their own conventions: pytorch/examples' ``TransformerNet``
  (the same layers) is fed 0-255 directly and its last convolution is clamped to
  [0, 255] (``input_divisor=1, output="clamp"``).
* The course's table 4.3 exactly, as jcjohnson/fast-neural-style trained it
  (``padding="input"``): one 40-pixel reflection pad at the input, zero-padded 9x9 and
  strided convolutions, residual blocks of two *unpadded* 3x3 convolutions whose
  shortcut is cropped by 2 pixels per side (each block shrinks the map by 4; the five
  blocks use up the 40 pixels at a quarter of the resolution), transposed-convolution
  upsampling. Their pixels are BGR minus the VGG mean (``channel_order="bgr"``,
  ``input_mean``, ``input_divisor=1``) and their output is ``150 tanh`` plus that mean
  (``output_scale``, ``output_offset``, per channel).
* Other trained shapes, as part of the convention (``widths``, ``residual_blocks``,
  ``conv_bias``, ``contract_norm``, ``output_norm``, ``output="sigmoid"``): Dumoulin et
  al.'s 26-style network from Magenta's TensorFlow demo is this architecture with widths
  32, 32, 32, 8, 4, six residual blocks, convolutions without bias, a conditional instance
  norm after the last convolution too and ``255 sigmoid`` out; Ghiasi et al.'s arbitrary
  style network (2017) has widths 8, 16, 32, 16, 8, five blocks, its contracting layers'
  batch norms folded into their biases (no norm there) and every other norm conditioned
  on a 100-d style vector (``style_vector``; see :class:`InstanceNorm`).
* Reduced precision: under bf16/fp16 autocast the first convolution still runs in fp32
  (it sees the raw image; see :class:`FullPrecisionConvLayer`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from styleforge.config import NORMS, UPSAMPLES
from styleforge.errors import StyleforgeError

#: ``layer``: every convolution reflection-pads its own input (styleforge, pytorch/examples);
#: ``input``: one 40-pixel reflection pad at the input and unpadded residual blocks (jcjohnson).
PADDINGS = ("layer", "input")
CHANNEL_ORDERS = ("rgb", "bgr")
#: The input reflection of ``padding="input"``: 5 residual blocks x 2 convolutions x 2
#: pixels at a quarter of the resolution.
INPUT_PAD = 40
#: Output activations: ``tanh`` scaled to [0, 255] (styleforge, Johnson) or the last
#: convolution clamped to [0, 255] (pytorch/examples).
#: ``sigmoid``: ``255 sigmoid`` of the last layer (Magenta's networks, on [0, 1] inputs).
OUTPUTS = ("tanh", "clamp", "sigmoid")
#: The default widths: the 9x9 and two strided convolutions, then the two upsampling layers.
WIDTHS = (32, 64, 128, 64, 32)


class InstanceNorm(nn.Module):
    """Instance normalisation with learned scale and shift (Ulyanov, Vedaldi & Lempitsky 2016).

    Same parameters and result as ``nn.InstanceNorm2d(C, affine=True)``, plus two modes
    used to stylise huge images in tiles: ``record`` stores each image's per-channel
    mean and variance (computed on a whole, possibly downscaled, image), and ``freeze``
    normalises with the stored statistics instead of each tile's own, so every tile is
    normalised like the whole image.

    With ``styles = K > 1`` it is conditional instance normalisation (Dumoulin, Shlens &
    Kudlur 2017): ``weight`` and ``bias`` are (K, C), one row per style, and the scale and
    shift used are ``mix @ weight`` and ``mix @ bias`` for the mixing weights ``mix`` (K,)
    set by :func:`select_styles` (one-hot: one style; convex weights: a blend).

    A norm conditioned on a style vector ``v`` (D,) through learned affine maps,
    ``gamma = W_g v + b_g`` and ``beta = W_b v + b_b`` (Ghiasi et al. 2017), is the same
    layer with K = D + 1 rows, ``weight = [W_g^T; b_g^T]``, and ``mix = [v, 1]``
    (:meth:`TransformNet.set_style_vector`).
    """

    def __init__(self, channels: int, eps: float = 1e-5, styles: int = 1) -> None:
        super().__init__()
        self.eps = eps
        self.styles = styles
        shape = (channels,) if styles == 1 else (styles, channels)
        self.weight = nn.Parameter(torch.ones(shape))
        self.bias = nn.Parameter(torch.zeros(shape))
        self.mode = "normal"  # normal | record | freeze | export
        self.stats: tuple[torch.Tensor, torch.Tensor] | None = None
        self.power_difference = False  # variance through the PowerDifference operator
        # (K,) style weights (None: style 0); a buffer so that it moves with the module and a
        # CUDA graph replay needs no host-to-device copy.
        self.register_buffer("mix", None, persistent=False)

    def scale_shift(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The (C,) scale and shift in use (the style mix's, for K > 1)."""
        if self.styles == 1:
            return self.weight, self.bias
        mix = self.mix if self.mix is not None else F.one_hot(torch.tensor(0), self.styles).float()
        mix = mix.to(self.weight.device, self.weight.dtype)[:, None]
        # A weighted sum, not a matmul: autocast would run a matmul in bf16.
        return (mix * self.weight).sum(0), (mix * self.bias).sum(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.power_difference and not (self.mode == "freeze" and self.stats is not None):
            return self._decomposed(x)
        weight, bias = self.scale_shift()
        if self.mode == "export":  # one traceable path for every batch size
            return F.instance_norm(x, weight=weight, bias=bias, eps=self.eps)
        if self.mode == "freeze" and self.stats is not None:
            mean, var = self.stats
            return F.batch_norm(x, mean, var, weight, bias, training=False, eps=self.eps)
        if self.mode == "record":
            if x.shape[0] != 1:
                raise StyleforgeError("instance-norm statistics are recorded one image at a time")
            var, mean = torch.var_mean(x.float(), dim=(0, 2, 3), unbiased=False)
            self.stats = (mean.detach(), var.detach())
        if x.shape[0] == 1:
            # For one image, batch norm's per-channel statistics over (N, H, W) are exactly
            # the instance statistics, and its CPU kernel works on channels_last directly,
            # without the layout copies F.instance_norm makes (about 1.8x faster
            # stylisation at 512 px under bf16 on the CPU, benchmarks/transfer.py). In
            # float32 its statistics are not accurate enough there: summed pairwise instead.
            if needs_pairwise_moments(x):
                return channels_last_instance_norm(x, weight, bias, self.eps)
            return F.batch_norm(x, None, None, weight.to(x.dtype), bias.to(x.dtype), training=True, eps=self.eps)
        return F.instance_norm(x, weight=weight, bias=bias, eps=self.eps)

    def _decomposed(self, x: torch.Tensor) -> torch.Tensor:
        """Instance norm written out, its variance through PowerDifference (the course's
        section 4.4): mean, (x - mean)^2 by the operator, mean, then normalise. Statistics
        in fp32 for half-precision inputs; exported, the operator is one node each."""
        from styleforge.ops import power_difference

        x32 = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        mean = x32.mean(dim=(2, 3), keepdim=True)
        var = power_difference(x32, mean, 2.0).mean(dim=(2, 3), keepdim=True)
        if self.mode == "record":
            if x.shape[0] != 1:
                raise StyleforgeError("instance-norm statistics are recorded one image at a time")
            self.stats = (mean.flatten().detach(), var.flatten().detach())
        weight, bias = self.scale_shift()
        scale = weight.to(x32.dtype).view(1, -1, 1, 1) * torch.rsqrt(var + self.eps)
        return ((x32 - mean) * scale + bias.to(x32.dtype).view(1, -1, 1, 1)).to(x.dtype)


def needs_pairwise_moments(x: torch.Tensor) -> bool:
    """Whether batch norm's own statistics of ``x`` would lose float32 accuracy: a
    float32 channels_last tensor on the CPU (see :func:`channels_last_moments`). bf16
    keeps the kernel: it accumulates in float32, far below bf16's own rounding."""
    return (x.device.type == "cpu" and x.dtype == torch.float32 and not x.is_contiguous()
            and x.is_contiguous(memory_format=torch.channels_last))


def channels_last_moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (variance, mean) over (N, H, W) of a channels_last tensor, both (C,).

    PyTorch's CPU batch-norm kernel sums channels_last statistics sequentially in
    float32, so its error grows with H*W: measured here, 1e-4 of a standard deviation
    at 512x512 and 4e-3 at 2048x2048 (up to 0.7 grey levels of a 1024 px output against
    float64), where the NCHW kernel stays near 1e-6. ``torch.mean`` over the
    (N*H*W, C) view of the same memory sums pairwise (cascade), and the variance is the
    mean of squared deviations from that mean (two passes, no cancellation): ~1e-6 at
    any size.
    """
    rows = x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])  # a view: channels_last is (N, H, W, C) in memory
    mean = rows.mean(0)
    return (rows - mean).square().mean(0), mean


def channels_last_instance_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """Instance norm of one channels_last image (1, C, H, W) with (C,) ``weight`` and
    ``bias``, from :func:`channels_last_moments`; returns channels_last, differentiable.

    ``y = x * s + (bias - mean * s)`` with ``s = weight / sqrt(var + eps)``: one fused
    pass (``addcmul``), as fast as batch norm's own affine pass here."""
    var, mean = channels_last_moments(x)
    scale = weight * torch.rsqrt(var + eps)
    return torch.addcmul((bias - mean * scale).view(1, -1, 1, 1), x, scale.view(1, -1, 1, 1))


def use_power_difference(net: nn.Module, enabled: bool = True) -> None:
    """Make every :class:`InstanceNorm` of ``net`` compute its variance with the
    PowerDifference operator (``enabled``) or with PyTorch's fused kernels (the default)."""
    for module in net.modules():
        if isinstance(module, InstanceNorm):
            module.power_difference = enabled


def select_styles(net: nn.Module, mix: torch.Tensor | None) -> None:
    """Set every conditional :class:`InstanceNorm` of ``net`` to the style weights ``mix``
    (K,) (None: style 0). Single-style norms are unaffected."""
    for module in net.modules():
        if isinstance(module, InstanceNorm) and module.styles > 1:
            module.mix = None if mix is None else mix.detach().float().to(module.weight.device)


def weaken_instance_norms(net: nn.Module, strength: float) -> None:
    """Move every :class:`InstanceNorm`'s learned scale and shift toward the identity
    normalisation in place: ``gamma' = 1 + strength (gamma - 1)``, ``beta' = strength beta``
    (1 leaves the network as it is; 0 removes the style's modulation)."""
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, InstanceNorm):
                module.weight.mul_(strength).add_(1.0 - strength)
                module.bias.mul_(strength)


def _norm(kind: str, channels: int, styles: int = 1) -> nn.Module:
    if kind == "instance":
        return InstanceNorm(channels, styles=styles)
    return nn.BatchNorm2d(channels)


def set_norm_mode(net: nn.Module, mode: str) -> None:
    """Switch every :class:`InstanceNorm` of ``net`` to ``normal``, ``record`` or ``freeze``."""
    for module in net.modules():
        if isinstance(module, InstanceNorm):
            module.mode = mode
            if mode == "normal":
                module.stats = None


class ConvLayer(nn.Module):
    """Padding then a convolution: ``reflect`` (output size = ceil(input / stride)),
    ``zero`` (the same size, zeros outside) or ``none`` (valid convolution)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, pad: str = "reflect", bias: bool = True) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(kernel // 2) if pad == "reflect" else nn.Identity()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2 if pad == "zero" else 0, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pad(x))


class FullPrecisionConvLayer(ConvLayer):
    """A :class:`ConvLayer` that always computes in float32, even under autocast.

    Used for the first layer, which sees the raw image: rounding it to bf16 there cost
    about 7 dB of output PSNR against fp32 in ``benchmarks/transfer.py``, for ~5% of the
    network's arithmetic.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return self.conv(self.pad(x.float()))


class ResidualBlock(nn.Module):
    """conv-norm-ReLU-conv-norm plus the identity; with ``padded=False`` the convolutions
    are unpadded and the identity is cropped by 2 pixels per side to match."""

    def __init__(self, channels: int, norm: str, padded: bool = True, styles: int = 1, bias: bool = True) -> None:
        super().__init__()
        pad = "reflect" if padded else "none"
        self.crop = 0 if padded else 2
        self.conv1, self.norm1 = ConvLayer(channels, channels, 3, pad=pad, bias=bias), _norm(norm, channels, styles)
        self.conv2, self.norm2 = ConvLayer(channels, channels, 3, pad=pad, bias=bias), _norm(norm, channels, styles)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        c = self.crop
        shortcut = x[:, :, c:-c, c:-c] if c else x
        return shortcut + self.norm2(self.conv2(y))


class UpsampleLayer(nn.Module):
    """x2 upsampling: nearest resize + conv (``resize``) or a transposed conv (``deconv``)."""

    def __init__(self, c_in: int, c_out: int, mode: str, bias: bool = True) -> None:
        super().__init__()
        self.mode = mode
        if mode == "resize":
            self.conv = ConvLayer(c_in, c_out, 3, bias=bias)
        else:
            self.deconv = nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "resize":
            return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))
        return self.deconv(x)


Channels = float | tuple[float, float, float]


def _per_channel(value: float | tuple[float, ...] | list[float], what: str) -> tuple[float, float, float]:
    values = tuple(float(v) for v in value) if isinstance(value, (tuple, list)) else (float(value),) * 3
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise StyleforgeError(f"{what} must be one number or three finite numbers, got {value!r}")
    return values  # type: ignore[return-value]


def _whole(text: str, what: str = "styles") -> int:
    try:
        return int(text)
    except ValueError:
        raise StyleforgeError(f"{what} {text!r} is not a whole number") from None


def _whole_numbers(text: str, what: str, count: int) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in str(text).split(","))
    except ValueError:
        values = ()
    if len(values) != count or not all(v >= 1 for v in values):
        raise StyleforgeError(f"{what} {text!r} must be {count} comma-separated whole numbers >= 1")
    return values


def _flag(text: str, what: str) -> bool:
    if text not in ("0", "1"):
        raise StyleforgeError(f"{what} {text!r} must be 0 or 1")
    return text == "1"


def _text(values: tuple[float, float, float]) -> str:
    return f"{values[0]:g}" if len(set(values)) == 1 else ",".join(f"{v!r}" for v in values)


class TransformNet(nn.Module):
    """Feed-forward style network: (N, 3, H, W) RGB 0-255 in, same shape 0-255 out.

    Args:
        norm: ``instance`` (default) or ``batch``.
        upsample: ``resize`` (default) or ``deconv``.
        input_divisor: the 0-255 input (less ``input_mean``) is divided by this, one
            number or one per channel (255: the layers see [0, 1]; 1: they see 0-255,
            as pytorch/examples' networks were trained).
        output: ``tanh`` (``output_scale * tanh + output_offset``, by default scaled to
            [0, 255]) or ``clamp`` (the last convolution clamped to [0, 255]); see :data:`OUTPUTS`.
        padding: ``layer`` (default) or ``input``; see :data:`PADDINGS`.
        channel_order: the order the layers see the channels in (``bgr``: Caffe/Torch7 VGG habit).
        input_mean: subtracted from the 0-255 input first, per channel in ``channel_order``.
        output_scale: of the ``tanh`` output, per channel in ``channel_order``.
        output_offset: of the ``tanh`` output, per channel in ``channel_order``.
        styles: K > 1 makes every instance norm conditional, one scale/shift row per style
            (:meth:`select_styles` picks or blends them); instance norm only.
        widths: channels of the 9x9, the two strided and the two upsampling layers.
        residual_blocks: how many residual blocks (at the last strided layer's width).
        conv_bias: whether the convolutions have biases (Magenta's 26-style network's do not).
        contract_norm: whether the 9x9 and strided convolutions are normalised (Ghiasi et
            al.'s are not: their batch norms are folded into the biases).
        output_norm: a norm after the last convolution too, before the output activation.
        style_vector: D > 0 conditions every norm on a D-dimensional style vector
            (:meth:`set_style_vector`) instead of K fixed styles.
    """

    def __init__(self, norm: str = "instance", upsample: str = "resize", input_divisor: Channels = 255.0,
                 output: str = "tanh", *, padding: str = "layer", channel_order: str = "rgb", input_mean: Channels = 0.0,
                 output_scale: Channels = 127.5, output_offset: Channels = 127.5, styles: int = 1,
                 widths: tuple[int, ...] = WIDTHS, residual_blocks: int = 5, conv_bias: bool = True,
                 contract_norm: bool = True, output_norm: bool = False, style_vector: int = 0) -> None:
        super().__init__()
        if not (isinstance(styles, int) and styles >= 1) or (styles > 1 and norm != "instance"):
            raise StyleforgeError(f"styles must be a whole number >= 1, and > 1 needs instance norm (got {styles}, {norm} norm)")
        if style_vector and (styles > 1 or norm != "instance" or padding != "layer"):
            raise StyleforgeError("a style-vector network has one instance-norm layout (styles 1, instance norm, layer padding)")
        widths = tuple(int(w) for w in widths)
        if len(widths) != 5 or not all(w >= 1 for w in widths) or not residual_blocks >= 1:
            raise StyleforgeError(f"widths must be 5 whole numbers >= 1 and residual blocks >= 1 (got {widths}, {residual_blocks})")
        if padding == "input" and residual_blocks != 5:
            raise StyleforgeError("padding 'input' is jcjohnson's layout of exactly 5 residual blocks")
        self.styles, self.style_vector = styles, style_vector
        self.widths, self.residual_blocks, self.conv_bias = widths, residual_blocks, conv_bias
        self.contract_norm, self.output_norm = contract_norm, output_norm
        for value, choices, what in ((norm, NORMS, "norm"), (upsample, UPSAMPLES, "upsample"), (output, OUTPUTS, "output"),
                                     (padding, PADDINGS, "padding"), (channel_order, CHANNEL_ORDERS, "channel order")):
            if value not in choices:
                raise StyleforgeError(f"unknown {what} {value!r}; use one of {', '.join(choices)}")
        divisor = _per_channel(input_divisor, "input_divisor")
        if not all(d > 0 for d in divisor):
            raise StyleforgeError(f"input_divisor must be positive, got {input_divisor}")
        self.norm, self.upsample, self.output, self.padding, self.channel_order = norm, upsample, output, padding, channel_order
        self.input_divisor, self.input_mean = divisor, _per_channel(input_mean, "input_mean")
        self.output_scale, self.output_offset = _per_channel(output_scale, "output_scale"), _per_channel(output_offset, "output_offset")
        for name, values in (("_mean", self.input_mean), ("_divisor", self.input_divisor), ("_scale", self.output_scale),
                             ("_offset", self.output_offset)):
            self.register_buffer(name, torch.tensor(values).view(1, 3, 1, 1), persistent=False)
        conv_pad = "reflect" if padding == "layer" else "zero"
        rows = style_vector + 1 if style_vector else styles  # [v, 1] @ [W^T; b^T] (see InstanceNorm)
        w1, w2, w3, w4, w5 = widths

        def contract(channels: int) -> nn.Module:
            return _norm(norm, channels, rows) if contract_norm else nn.Identity()

        self.conv1, self.norm1 = FullPrecisionConvLayer(3, w1, 9, pad=conv_pad, bias=conv_bias), contract(w1)
        self.conv2, self.norm2 = ConvLayer(w1, w2, 3, stride=2, pad=conv_pad, bias=conv_bias), contract(w2)
        self.conv3, self.norm3 = ConvLayer(w2, w3, 3, stride=2, pad=conv_pad, bias=conv_bias), contract(w3)
        self.residuals = nn.Sequential(*(ResidualBlock(w3, norm, padding == "layer", rows, conv_bias) for _ in range(residual_blocks)))
        self.up1, self.norm4 = UpsampleLayer(w3, w4, upsample, conv_bias), _norm(norm, w4, rows)
        self.up2, self.norm5 = UpsampleLayer(w4, w5, upsample, conv_bias), _norm(norm, w5, rows)
        self.conv_out = ConvLayer(w5, 3, 9, pad=conv_pad, bias=conv_bias)
        if output_norm:
            self.norm_out = _norm(norm, 3, rows)
        if style_vector:
            self.set_style_vector(torch.zeros(style_vector))

    @classmethod
    def from_convention(cls, convention: dict[str, str]) -> TransformNet:
        """The network a saved :meth:`convention` describes (absent fields take the defaults).

        Raises:
            StyleforgeError: an unknown or malformed value.
        """
        def numbers(key: str, default: Channels) -> Channels:
            text = convention.get(key)
            if text is None:
                return default
            try:
                values = tuple(float(v) for v in str(text).split(","))
            except ValueError:
                raise StyleforgeError(f"{key} {text!r} is not a number or three comma-separated numbers") from None
            return values[0] if len(values) == 1 else values  # type: ignore[return-value]

        return cls(convention.get("norm", "instance"), convention.get("upsample", "resize"), numbers("input_divisor", 255.0),
                   convention.get("output", "tanh"), padding=convention.get("padding", "layer"),
                   channel_order=convention.get("channel_order", "rgb"), input_mean=numbers("input_mean", 0.0),
                   output_scale=numbers("output_scale", 127.5), output_offset=numbers("output_offset", 127.5),
                   styles=_whole(convention.get("styles", "1")),
                   widths=_whole_numbers(convention.get("widths", ",".join(map(str, WIDTHS))), "widths", 5),
                   residual_blocks=_whole(convention.get("residual_blocks", "5"), "residual_blocks"),
                   conv_bias=_flag(convention.get("conv_bias", "1"), "conv_bias"),
                   contract_norm=_flag(convention.get("contract_norm", "1"), "contract_norm"),
                   output_norm=_flag(convention.get("output_norm", "0"), "output_norm"),
                   style_vector=_whole(convention.get("style_vector", "0"), "style_vector"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Stylise a batch of RGB 0-255 images; returns the same shape, values in [0, 255]."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise StyleforgeError(f"TransformNet expects (N, 3, H, W) images, got {tuple(x.shape)}")
        height, width = x.shape[2:]
        y = self._reorder(x)
        y = (y - self._mean) / self._divisor if any(self.input_mean) else y / self._divisor
        if self.exporting:
            # One graph for every size: always pad (by 0-3 pixels), with no branch on the
            # example's shape (a branch would be traced away and odd sizes come out wrong).
            y = F.pad(y, (0, (-width) % 4, 0, (-height) % 4), mode="reflect")
        else:
            y = _pad_to_fit(y, MIN_SIDE if self.padding == "layer" else INPUT_MIN_SIDE)
        return self._reorder(self._body(y))[:, :, :height, :width]

    def _reorder(self, x: torch.Tensor) -> torch.Tensor:
        """RGB <-> the layers' channel order (the same swap both ways)."""
        return x.flip(1) if self.channel_order == "bgr" else x

    def _body(self, y: torch.Tensor) -> torch.Tensor:
        """The layers of table 4.3 on a padded, normalised batch; returns 0-255 in the layers' channel order."""
        if self.padding == "input":
            y = F.pad(y, (INPUT_PAD,) * 4, mode="reflect")
        y = F.relu(self.norm1(self.conv1(y)))
        y = F.relu(self.norm2(self.conv2(y)))
        y = F.relu(self.norm3(self.conv3(y)))
        y = self.residuals(y)
        y = F.relu(self.norm4(self.up1(y)))
        y = F.relu(self.norm5(self.up2(y)))
        y = self._last_conv(y)
        if self.output_norm:
            y = self.norm_out(y)
        if self.output == "clamp":
            return y.clamp(0.0, 255.0)
        if self.output == "sigmoid":
            return torch.sigmoid(y.float()) * 255.0
        if self.output_scale == (127.5,) * 3 and self.output_offset == (127.5,) * 3:
            return (torch.tanh(y) + 1.0) * 127.5  # within [0, 255] by construction
        return (torch.tanh(y) * self._scale + self._offset).clamp(0.0, 255.0)

    def _last_conv(self, y: torch.Tensor) -> torch.Tensor:
        """``conv_out`` (to 3 channels), run on channels_last tensors on the CPU whatever
        the layout it is given; returns the layout it was given.

        oneDNN's NCHW kernels for a convolution with 3 output channels are pathologically
        slow on the CPU: for this 32->3 9x9 layer at batch 4, 256 px, the input gradient
        took 1.18 s in NCHW and 65 ms in channels_last on a 2-core Zen 3, a fifth of a
        whole training step (benchmarks/train.py). The other layers are as fast or faster
        in NCHW when training, so only this one switches (stylisation on the CPU is
        channels_last throughout already, and then nothing is copied).
        """
        channels_last = torch.channels_last
        if self.exporting or y.device.type != "cpu" or y.is_contiguous(memory_format=channels_last):
            return self.conv_out(y)
        return self.conv_out(y.contiguous(memory_format=channels_last)).contiguous()

    def convention(self) -> dict[str, str]:
        """The architecture fields a saved model records (all text, as safetensors
        metadata); fields at their defaults beyond the first four are left out."""
        fields = {"norm": self.norm, "upsample": self.upsample, "input_divisor": _text(self.input_divisor), "output": self.output}
        extra = {"padding": (self.padding, "layer"), "channel_order": (self.channel_order, "rgb"), "styles": (str(self.styles), "1"),
                 "input_mean": (_text(self.input_mean), "0"), "output_scale": (_text(self.output_scale), "127.5"),
                 "output_offset": (_text(self.output_offset), "127.5"),
                 "widths": (",".join(map(str, self.widths)), ",".join(map(str, WIDTHS))),
                 "residual_blocks": (str(self.residual_blocks), "5"), "conv_bias": (str(int(self.conv_bias)), "1"),
                 "contract_norm": (str(int(self.contract_norm)), "1"), "output_norm": (str(int(self.output_norm)), "0"),
                 "style_vector": (str(self.style_vector), "0")}
        return fields | {key: value for key, (value, default) in extra.items() if value != default}

    def select_styles(self, weights: object | None) -> None:
        """Use style ``k`` (an int), or blend the styles with ``weights`` (K numbers >= 0,
        any positive sum; normalised), or style 0 (None). Single-style networks accept
        only None, 0 or ``[1]``."""
        if weights is None:
            select_styles(self, None)
            return
        mix = torch.zeros(self.styles)
        if isinstance(weights, int):
            if not 0 <= weights < self.styles:
                raise StyleforgeError(f"style {weights} is out of range: this model has {self.styles} style(s), 0-{self.styles - 1}")
            mix[weights] = 1.0
        else:
            values = torch.as_tensor(weights, dtype=torch.float32).flatten()
            if values.numel() != self.styles or not bool(torch.isfinite(values).all()) or bool((values < 0).any()) \
                    or not float(values.sum()) > 0:
                raise StyleforgeError(f"style weights must be {self.styles} numbers >= 0 with a positive sum, got {weights}")
            mix = values / values.sum()
        select_styles(self, mix)

    def set_style_vector(self, vector: torch.Tensor) -> None:
        """Condition a style-vector network's norms on ``vector`` (D,), any real numbers
        (Ghiasi et al.'s style prediction network's output)."""
        values = torch.as_tensor(vector, dtype=torch.float32).flatten()
        if not self.style_vector or values.numel() != self.style_vector or not bool(torch.isfinite(values).all()):
            raise StyleforgeError(f"a style vector needs {self.style_vector} finite numbers for this network, got {values.numel()}"
                                  if self.style_vector else "this network takes no style vector")
        select_styles(self, torch.cat([values, values.new_ones(1)]))

    def record_norm_statistics(self, x: torch.Tensor) -> None:
        """Record every instance norm's statistics on the (1, 3, H, W) image ``x``; later
        calls normalise with them (tiles of that image) until :meth:`clear_norm_statistics`."""
        set_norm_mode(self, "record")
        self(x)
        set_norm_mode(self, "freeze")

    def clear_norm_statistics(self) -> None:
        """Back to per-image statistics."""
        set_norm_mode(self, "normal")

    @property
    def exporting(self) -> bool:
        """True inside :func:`export_mode`."""
        return getattr(self, "_exporting", False)


class StyleVectorStylizer(nn.Module):
    """A style-vector network (``style_vector = D``, Ghiasi et al. 2017) conditioned on
    ``s * style + (1 - s) * own`` for the strength ``s``: ``style`` is the painting's
    (or a blend of paintings') vector and ``own`` the photo's own vector, predicted by
    ``predict`` from each image, so ``s = 0`` asks the network for the photo's own style
    (the paper's way of weakening the style, section 5). With ``s = 1`` ``predict`` is
    never called. Tiles of one image share the whole image's vector
    (:meth:`record_norm_statistics`).

    Args:
        net: the :class:`TransformNet` with ``style_vector > 0``.
        style: the (D,) style vector to apply.
        strength: ``s`` in [0, 1].
        predict: (1, 3, H, W) 0-255 image -> its (D,) style vector; needed when s < 1.
    """

    def __init__(self, net: TransformNet, style: torch.Tensor, strength: float = 1.0,
                 predict: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        super().__init__()
        if strength < 1.0 and predict is None:
            raise StyleforgeError("a strength below 1 needs the style predictor, to find the photo's own style vector")
        self.net, self.strength, self.predict = net, float(strength), predict
        self.style = torch.as_tensor(style, dtype=torch.float32).flatten()
        self.frozen: torch.Tensor | None = None
        net.set_style_vector(self.style)

    @property
    def device_description(self) -> str | None:
        """The wrapped network's runtime description (an ONNX file's provider), if any."""
        return getattr(self.net, "device_description", None)

    def vector_for(self, x: torch.Tensor) -> torch.Tensor:
        """The (D,) vector used for the (1, 3, H, W) image ``x``."""
        if self.strength >= 1.0 or self.predict is None:
            return self.style
        own = torch.as_tensor(self.predict(x), dtype=torch.float32).flatten()
        return self.strength * self.style + (1.0 - self.strength) * own

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.strength >= 1.0 or self.frozen is not None:
            return self.net(x)
        outputs = []
        for i in range(x.shape[0]):  # each photo its own vector
            self.net.set_style_vector(self.vector_for(x[i : i + 1]))
            outputs.append(self.net(x[i : i + 1]))
        return torch.cat(outputs)

    def record_norm_statistics(self, x: torch.Tensor) -> None:
        """Fix the vector and the norms' statistics from the whole (1, 3, H, W) image ``x``
        for its tiles, until :meth:`clear_norm_statistics`."""
        self.frozen = self.vector_for(x)
        self.net.set_style_vector(self.frozen)
        self.net.record_norm_statistics(x)

    def clear_norm_statistics(self) -> None:
        """Back to per-image vectors and statistics."""
        self.frozen = None
        self.net.set_style_vector(self.style)
        self.net.clear_norm_statistics()


@contextlib.contextmanager
def export_mode(net: TransformNet) -> Iterator[TransformNet]:
    """Make ``net`` traceable into one graph valid for every batch and size (ONNX export):
    instance norm as ``F.instance_norm`` for any batch (the single-image batch-norm
    shortcut would be traced as a fixed batch of 1) and unconditional padding. The
    results equal eager mode for sides >= 5; smaller inputs are padded by the runtime."""
    norms = [m for m in net.modules() if isinstance(m, InstanceNorm)]
    modes = [m.mode for m in norms]
    net._exporting = True
    for module in norms:
        module.mode = "export"
    try:
        yield net
    finally:
        net._exporting = False
        for module, mode in zip(norms, modes, strict=True):
            module.mode = mode


#: The smallest side the layers can pad: the 9x9 convolutions reflect 4 pixels (side > 4)
#: and the 3x3 ones at a quarter of the resolution reflect 1 (side >= 2 there).
MIN_SIDE = 8
#: The same for ``padding="input"``: the 40-pixel input reflection needs a side > 40.
INPUT_MIN_SIDE = 44


def _padding_to_fit(side: int, min_side: int = MIN_SIDE) -> int:
    """Pixels to add so ``side`` becomes a multiple of 4 (two stride-2 stages) and at
    least ``min_side``; the output is cropped back, so a 1x1 image works too."""
    return max(min_side, side + (-side % 4)) - side


def _pad_to_fit(y: torch.Tensor, min_side: int = MIN_SIDE) -> torch.Tensor:
    """Pad right and bottom by :func:`_padding_to_fit`: reflected, or replicated where the
    image is too small to reflect."""
    height, width = y.shape[2:]
    pad_h, pad_w = _padding_to_fit(height, min_side), _padding_to_fit(width, min_side)
    if not (pad_h or pad_w):
        return y
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(y, (0, pad_w, 0, pad_h), mode=mode)


def parameter_count(net: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def convolution_gflop_per_megapixel(net: nn.Module) -> float:
    """GFLOP of ``net``'s convolutions (a multiply-add counted as two, biases left out) per
    megapixel of input: what a job of that many megapixels costs it, whatever the weights.

    Measured by forward hooks on one 64 x 64 pass and divided by the first convolution's
    output pixels (the working resolution): exact for networks that pad each layer; for
    ``padding="input"``, whose unpadded residual blocks shrink a 64-pixel map much more
    than a photo's, it undercounts (134 where a 1024 px photo costs 252 GFLOP per MP), which
    only makes the runtime rules that use it more cautious. Takes any module of 2-D
    convolutions fed one NCHW image; returns 0.0 when it has none.
    """
    counts: list[tuple[float, int]] = []  # (FLOPs, output pixels) per convolution, in call order

    def count(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        flops_per_tap = 2 * module.kernel_size[0] * module.kernel_size[1]  # a multiply and an add per weight
        if isinstance(module, nn.ConvTranspose2d):  # each input value meets every output tap
            flops = inputs[0].numel() * module.out_channels // module.groups * flops_per_tap
        else:
            flops = output.numel() * module.in_channels // module.groups * flops_per_tap
        counts.append((float(flops), output.shape[-2] * output.shape[-1]))

    hooks = [m.register_forward_hook(count) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    try:
        parameter = next(net.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
        with torch.inference_mode():
            net(torch.full((1, 3, 64, 64), 128.0, device=device))
    finally:
        for hook in hooks:
            hook.remove()
    if not counts:
        return 0.0
    return sum(flops for flops, _ in counts) / counts[0][1] * 1e6 / 1e9
