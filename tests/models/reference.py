"""pytorch/examples' fast_neural_style ``TransformerNet``, written here from its published
structure (key names ``conv1.conv2d``, ``in1``, ``res1.conv1.conv2d``, ``deconv1.conv2d``):
the independent reference the imports are checked against. Nothing here imports
styleforge's network."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvLayer(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        self.reflection_pad = nn.ReflectionPad2d(kernel // 2)
        self.conv2d = nn.Conv2d(c_in, c_out, kernel, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2d(self.reflection_pad(x))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1, self.in1 = ConvLayer(channels, channels, 3), nn.InstanceNorm2d(channels, affine=True)
        self.conv2, self.in2 = ConvLayer(channels, channels, 3), nn.InstanceNorm2d(channels, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.in2(self.conv2(F.relu(self.in1(self.conv1(x)))))


class UpsampleConvLayer(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, upsample: int) -> None:
        super().__init__()
        self.upsample = upsample
        self.reflection_pad = nn.ReflectionPad2d(kernel // 2)
        self.conv2d = nn.Conv2d(c_in, c_out, kernel, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, mode="nearest", scale_factor=self.upsample)
        return self.conv2d(self.reflection_pad(x))


class TransformerNet(nn.Module):
    """0-255 RGB in, unbounded out (pytorch/examples clamps to 0-255 when saving)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.in1 = ConvLayer(3, 32, 9), nn.InstanceNorm2d(32, affine=True)
        self.conv2, self.in2 = ConvLayer(32, 64, 3, 2), nn.InstanceNorm2d(64, affine=True)
        self.conv3, self.in3 = ConvLayer(64, 128, 3, 2), nn.InstanceNorm2d(128, affine=True)
        for k in range(1, 6):
            setattr(self, f"res{k}", ResidualBlock(128))
        self.deconv1, self.in4 = UpsampleConvLayer(128, 64, 3, 2), nn.InstanceNorm2d(64, affine=True)
        self.deconv2, self.in5 = UpsampleConvLayer(64, 32, 3, 2), nn.InstanceNorm2d(32, affine=True)
        self.deconv3 = ConvLayer(32, 3, 9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.in1(self.conv1(x)))
        y = F.relu(self.in2(self.conv2(y)))
        y = F.relu(self.in3(self.conv3(y)))
        for k in range(1, 6):
            y = getattr(self, f"res{k}")(y)
        y = F.relu(self.in4(self.deconv1(y)))
        y = F.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)


def random_reference(seed: int = 0) -> TransformerNet:
    """Random convolutions, instance-norm scales 0.5-1.5 and shifts -0.5-0.5, and an output
    scaled so most pixels land inside 0-255 (as a trained model's do) but some clamp."""
    torch.manual_seed(seed)
    net = TransformerNet().eval()
    with torch.no_grad():
        for name, param in net.named_parameters():
            if param.ndim == 1 and name.endswith("weight"):
                param.uniform_(0.5, 1.5)
            elif param.ndim == 1 and name.endswith("bias") and not name.startswith("deconv3"):
                param.uniform_(-0.5, 0.5)
        net.deconv3.conv2d.weight.mul_(400.0)
        net.deconv3.conv2d.bias.fill_(128.0)
    return net


def reference_output(net: TransformerNet, x: torch.Tensor) -> torch.Tensor:
    """pytorch/examples' stylisation of 0-255 ``x``: the network, clamped to 0-255."""
    with torch.no_grad():
        return net(x).clamp(0, 255)


def old_style_state_dict(net: TransformerNet) -> dict[str, torch.Tensor]:
    """The state dict as older PyTorch saved it: instance norms also carry running stats."""
    state = dict(net.state_dict())
    for name, module in net.named_modules():
        if isinstance(module, nn.InstanceNorm2d):
            state[f"{name}.running_mean"] = torch.zeros(module.num_features)
            state[f"{name}.running_var"] = torch.ones(module.num_features)
    return state


def export_zoo_onnx(net: TransformerNet, path: object) -> None:
    """Export as the ONNX Model Zoo did: opset 9, fixed 1x3x224x224 input ``input1``,
    output ``output1`` (the zoo files carry no clamp: clients clamp)."""
    export_opset9(net, torch.rand(1, 3, 224, 224) * 255, path)


def export_opset9(net: nn.Module, example: torch.Tensor, path: object) -> None:
    """torch's TorchScript exporter at opset 9 (the zoo's era; its deprecation warning is
    expected here)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, example, str(path), opset_version=9, dynamo=False,
                          input_names=["input1"], output_names=["output1"])
