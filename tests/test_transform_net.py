"""The transform network of feed-forward style transfer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from styleforge.errors import StyleforgeError
from styleforge.nets.transform_net import (
    InstanceNorm,
    TransformNet,
    channels_last_moments,
    convolution_gflop_per_megapixel,
    parameter_count,
    set_norm_mode,
)


@pytest.mark.parametrize("norm", ["instance", "batch"])
@pytest.mark.parametrize("upsample", ["resize", "deconv"])
@pytest.mark.parametrize("shape", [(1, 3, 32, 32), (2, 3, 17, 23), (1, 3, 45, 30), (1, 3, 7, 5)])
def test_output_has_the_input_shape_and_range(norm: str, upsample: str, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    net = TransformNet(norm, upsample).eval()
    y = net(torch.rand(shape) * 255).detach()
    assert y.shape == shape
    assert float(y.min()) >= 0.0 and float(y.max()) <= 255.0


def test_parameter_count_of_the_default_network() -> None:
    # conv 9x9 3->32, 3x3 32->64, 64->128, 10 residual 3x3 128->128, up 128->64, 64->32, 9x9 32->3,
    # plus scale and shift of the 15 instance norms: 1,679,235 (the same as PyTorch's fast_neural_style).
    convs = (3 * 32 * 81 + 32) + (32 * 64 * 9 + 64) + (64 * 128 * 9 + 128) + 10 * (128 * 128 * 9 + 128) \
        + (128 * 64 * 9 + 64) + (64 * 32 * 9 + 32) + (32 * 3 * 81 + 3)
    norms = 2 * (32 + 64 + 128 + 10 * 128 + 64 + 32)
    assert parameter_count(TransformNet()) == convs + norms == 1_679_235
    assert parameter_count(TransformNet(upsample="deconv")) == 1_679_235



def test_convolution_flops_per_megapixel_of_the_default_network_in_closed_form() -> None:
    # multiply-adds per input pixel: 9x9 3->32, 3x3 32->64 at 1/4 of the pixels, 64->128 and
    # ten 128->128 at 1/16, 128->64 at 1/4, 64->32 at full size, 9x9 32->3
    macs = 3 * 32 * 81 + 32 * 64 * 9 / 4 + 64 * 128 * 9 / 16 + 10 * 128 * 128 * 9 / 16 + 128 * 64 * 9 / 4 \
        + 64 * 32 * 9 + 32 * 3 * 81
    assert convolution_gflop_per_megapixel(TransformNet()) == pytest.approx(2 * macs / 1e3) == pytest.approx(307.584)


@pytest.mark.parametrize("config", [{"upsample": "deconv"}, {"widths": (32, 32, 32, 8, 4), "residual_blocks": 6}])
def test_convolution_flops_per_megapixel_match_torchs_flop_counter(config: dict) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    net = TransformNet(**config).eval()
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        net(torch.rand(1, 3, 96, 128) * 255)  # another size than the function's own pass
    assert convolution_gflop_per_megapixel(net) == pytest.approx(counter.get_total_flops() / (96 * 128) * 1e6 / 1e9)
    assert convolution_gflop_per_megapixel(nn.Sequential(nn.ReLU())) == 0.0

def test_gradients_reach_every_parameter() -> None:
    net = TransformNet()
    net(torch.rand(2, 3, 24, 24) * 255).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_instance_norm_equals_torch_and_frozen_statistics_apply_the_whole_image_ones() -> None:
    ours = InstanceNorm(4)
    with torch.no_grad():
        ours.weight.uniform_(0.5, 1.5)
        ours.bias.uniform_(-1, 1)
    reference = nn.InstanceNorm2d(4, affine=True)
    reference.load_state_dict(ours.state_dict())
    x = torch.randn(1, 4, 8, 10) * 3 + 1
    torch.testing.assert_close(ours(x), reference(x))
    ours.mode = "record"
    full = ours(x)
    ours.mode = "freeze"
    torch.testing.assert_close(ours(x[:, :, :4, :5]), full[:, :, :4, :5])  # a tile normalised like the whole
    net = TransformNet()
    set_norm_mode(net, "freeze")
    assert all(m.mode == "freeze" for m in net.modules() if isinstance(m, InstanceNorm))
    set_norm_mode(net, "normal")
    assert all(m.stats is None for m in net.modules() if isinstance(m, InstanceNorm))


def test_bad_configuration_and_input() -> None:
    with pytest.raises(StyleforgeError, match="unknown norm"):
        TransformNet(norm="layer")
    with pytest.raises(StyleforgeError, match="unknown upsample"):
        TransformNet(upsample="pixelshuffle")
    with pytest.raises(StyleforgeError, match=r"\(N, 3, H, W\)"):
        TransformNet()(torch.rand(3, 16, 16))



@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_last_convolution_runs_channels_last_on_cpu_and_returns_the_given_layout(layout: torch.memory_format) -> None:
    # A channels_last result would carry that layout into VGG19, slower there in training.
    torch.manual_seed(0)
    net = TransformNet()
    seen = []
    net.conv_out.register_forward_pre_hook(lambda _, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last)))
    y = torch.randn(2, 32, 12, 16).contiguous(memory_format=layout)
    out = net._last_conv(y)
    assert seen == [True]
    assert out.is_contiguous(memory_format=layout)
    torch.testing.assert_close(out, net.conv_out(y.contiguous()), rtol=1e-5, atol=1e-5)


def test_the_layout_switch_changes_neither_output_nor_gradients(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    net = TransformNet()
    x = (torch.rand(2, 3, 20, 24) * 255).requires_grad_(True)
    out = net(x)
    grads = torch.autograd.grad(out.square().sum(), [x, *net.parameters()])
    monkeypatch.setattr(TransformNet, "_last_conv", lambda self, y: self.conv_out(y))
    reference = net(x)
    reference_grads = torch.autograd.grad(reference.square().sum(), [x, *net.parameters()])
    torch.testing.assert_close(out, reference, rtol=1e-5, atol=1e-4)
    # Biases followed by instance norm have a true gradient of zero, so theirs is rounding
    # noise on both sides: compare against the largest gradient's scale as well.
    scale = max(float(g.abs().max()) for g in reference_grads)
    for grad, expected in zip(grads, reference_grads, strict=True):
        assert float((grad - expected).norm()) <= 1e-5 * float(expected.norm()) + 1e-5 * scale


def _offset_channels(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """Random channels whose means are several standard deviations from zero (as after
    a convolution of positive inputs): where sequential float32 sums lose accuracy."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator) + 10 * torch.rand(1, shape[1], 1, 1, generator=generator)


def test_channels_last_statistics_keep_float32_accuracy_at_large_sizes() -> None:
    """PyTorch's CPU batch-norm kernel is ~1e-4 of a standard deviation off on this
    channels_last tensor (sequential float32 sums); InstanceNorm must stay within 1e-5
    of float64 instance norm, as it does on NCHW tensors."""
    x = _offset_channels((1, 8, 512, 512)).contiguous(memory_format=torch.channels_last)
    norm = InstanceNorm(8)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-1, 1)
        expected = F.instance_norm(x.double(), weight=norm.weight.double(), bias=norm.bias.double(), eps=norm.eps)
        y = norm(x)
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert (y.double() - expected).abs().max() < 1e-5
    var, mean = channels_last_moments(x)
    var64, mean64 = torch.var_mean(x.double(), dim=(0, 2, 3), unbiased=False)
    torch.testing.assert_close((var.double(), mean.double()), (var64, mean64), rtol=1e-6, atol=0)


def test_channels_last_statistics_give_instance_norms_gradients() -> None:
    x = _offset_channels((1, 4, 9, 7), seed=1).contiguous(memory_format=torch.channels_last).requires_grad_()
    norm = InstanceNorm(4)
    upstream = torch.randn(1, 4, 9, 7, generator=torch.Generator().manual_seed(2))
    (norm(x) * upstream).sum().backward()
    x64 = x.detach().double().requires_grad_()
    weight64, bias64 = (p.detach().double().requires_grad_() for p in (norm.weight, norm.bias))
    (F.instance_norm(x64, weight=weight64, bias=bias64, eps=norm.eps) * upstream.double()).sum().backward()
    for ours, expected in ((x.grad, x64.grad), (norm.weight.grad, weight64.grad), (norm.bias.grad, bias64.grad)):
        torch.testing.assert_close(ours.double(), expected, rtol=1e-4, atol=1e-4)
