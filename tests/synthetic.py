"""Small synthetic VGG19 weights written in the real file formats, and independent
reference forward passes to check styleforge's loaders against.

Nothing here imports styleforge's VGG code: the writers follow the published layouts
(torchvision's ``features.N`` / ``classifier.N`` state dict; MatConvNet's simplenn
struct array with [H, W, C_in, C_out] filters), and the references compute the network
the way each source framework defines it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
import torch
from torch import nn

BLOCKS = (2, 2, 4, 4, 4)
#: Narrow widths so tests are fast; the code path is the same as for 64..512.
TINY_WIDTHS = (4, 4, 6, 6, 8, 8, 8, 8, 8, 8, 8, 8, 10, 10, 10, 10)
MATCONVNET_MEAN = (123.68, 116.779, 103.939)


@dataclass
class SourceWeights:
    """Random weights in *MatConvNet-neutral* form: PyTorch-layout convs and fc as
    (out, C, g, g) "convolutions" over the pool5 map, plus the pool grid g."""

    convs: list[tuple[np.ndarray, np.ndarray]]  # (C_out, C_in, 3, 3), (C_out,)
    fcs: list[tuple[np.ndarray, np.ndarray]]  # fc6 (h1, C5, g, g); fc7 (h2, h1, 1, 1); fc8 (k, h2, 1, 1)
    grid: int

    @property
    def num_classes(self) -> int:
        return self.fcs[2][0].shape[0]


def random_weights(
    widths: tuple[int, ...] = TINY_WIDTHS,
    hidden: tuple[int, int] = (12, 12),
    num_classes: int = 10,
    grid: int = 2,
    seed: int = 0,
    scale: float = 1.0,
) -> SourceWeights:
    """Random weights with He-like scaling so activations neither vanish nor explode."""
    rng = np.random.default_rng(seed)
    convs = []
    c_in = 3
    for c_out in widths:
        w = rng.normal(0, scale * np.sqrt(2.0 / (9 * c_in)), size=(c_out, c_in, 3, 3)).astype(np.float32)
        b = rng.normal(0, 0.1, size=c_out).astype(np.float32)
        convs.append((w, b))
        c_in = c_out
    fcs = []
    shapes = [(hidden[0], c_in, grid, grid), (hidden[1], hidden[0], 1, 1), (num_classes, hidden[1], 1, 1)]
    for shape in shapes:
        fan_in = int(np.prod(shape[1:]))
        w = rng.normal(0, scale * np.sqrt(2.0 / fan_in), size=shape).astype(np.float32)
        b = rng.normal(0, 0.1, size=shape[0]).astype(np.float32)
        fcs.append((w, b))
    return SourceWeights(convs=convs, fcs=fcs, grid=grid)


#: Widths of a small transform network: fast to convert, export and quantise in tests.
SMALL_NET = {"widths": (4, 8, 8, 8, 4), "residual_blocks": 1}


def small_style_model(tmp_path: Path, name: str = "m", seed: int = 0, **convention: object) -> Path:
    """A small random network saved as a .safetensors style model (instance norms perturbed,
    so that a blend or a strength changes the output)."""
    from styleforge.models.files import save_style_model
    from styleforge.nets.transform_net import TransformNet

    torch.manual_seed(seed)
    net = TransformNet(**{**SMALL_NET, **convention})  # type: ignore[arg-type]
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    return save_style_model(net, tmp_path / f"{name}.safetensors", {})


def random_style_network(seed: int = 0) -> nn.Module:
    """The full-size TransformNet with random convolutions and random instance-norm scales
    (0.5-1.5) and shifts (-0.5-0.5), so no layer is close to an identity."""
    from styleforge.nets.transform_net import TransformNet

    torch.manual_seed(seed)
    net = TransformNet()
    with torch.no_grad():
        for name, param in net.named_parameters():
            if name.endswith("weight") and param.ndim == 1:
                param.uniform_(0.5, 1.5)
            elif name.endswith("bias") and param.ndim == 1:
                param.uniform_(-0.5, 0.5)
    return net


# ----------------------------------------------------------------------------- torchvision


def torchvision_reference(src: SourceWeights) -> nn.Module:
    """torchvision's VGG structure (features Sequential, avgpool, classifier Sequential)."""
    layers: list[nn.Module] = []
    c_in = 3
    conv_iter = iter(src.convs)
    for count in BLOCKS:
        for _ in range(count):
            w, _b = next(conv_iter)
            layers += [nn.Conv2d(c_in, w.shape[0], 3, padding=1), nn.ReLU(inplace=True)]
            c_in = w.shape[0]
        layers.append(nn.MaxPool2d(2, 2))

    class TorchvisionVGG(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(*layers)
            self.avgpool = nn.AdaptiveAvgPool2d((src.grid, src.grid))
            h1, h2, k = (fc[0].shape[0] for fc in src.fcs)
            self.classifier = nn.Sequential(
                nn.Linear(c_in * src.grid * src.grid, h1), nn.ReLU(True), nn.Dropout(),
                nn.Linear(h1, h2), nn.ReLU(True), nn.Dropout(),
                nn.Linear(h2, k),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    model = TorchvisionVGG()
    model.load_state_dict(torchvision_state_dict(src))
    return model.eval()


def torchvision_state_dict(src: SourceWeights) -> dict[str, torch.Tensor]:
    """The weights under torchvision's key names (``features.N.weight`` ...)."""
    state: dict[str, torch.Tensor] = {}
    index = 0
    conv_iter = iter(src.convs)
    for count in BLOCKS:
        for _ in range(count):
            w, b = next(conv_iter)
            state[f"features.{index}.weight"] = torch.from_numpy(w.copy())
            state[f"features.{index}.bias"] = torch.from_numpy(b.copy())
            index += 2
        index += 1
    for slot, (w, b) in zip((0, 3, 6), src.fcs):
        state[f"classifier.{slot}.weight"] = torch.from_numpy(w.reshape(w.shape[0], -1).copy())
        state[f"classifier.{slot}.bias"] = torch.from_numpy(b.copy())
    return state


def write_torchvision_pth(src: SourceWeights, path: Path) -> Path:
    torch.save(torchvision_state_dict(src), path)
    return path


# ----------------------------------------------------------------------------- MatConvNet


def _struct_cell(items: list[dict]) -> np.ndarray:
    cell = np.empty((1, len(items)), dtype=object)
    for i, item in enumerate(items):
        cell[0, i] = item
    return cell


def _pair_cell(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cell = np.empty((1, 2), dtype=object)
    cell[0, 0], cell[0, 1] = a, b
    return cell


def write_matconvnet_mat(
    src: SourceWeights,
    path: Path,
    mean: tuple[float, float, float] = MATCONVNET_MEAN,
    class_names: list[str] | None = None,
    legacy: bool = False,
) -> Path:
    """Write a simplenn .mat as MATLAB does: ``layers`` a 1xL cell of structs whose conv
    filters are [H, W, C_in, C_out]; fc layers as convolutions; ``meta`` (or, with
    ``legacy``, top-level ``normalization``/``classes`` and separate filters/biases)."""
    layers = []

    def conv_struct(name: str, w: np.ndarray, b: np.ndarray, pad: int) -> dict:
        filters = np.ascontiguousarray(w.transpose(2, 3, 1, 0))  # (Cout,Cin,H,W) -> [H,W,Cin,Cout]
        biases = b.reshape(1, -1)
        entry = {"name": name, "type": "conv", "stride": np.array([[1, 1]], float), "pad": np.full((1, 4), pad, float)}
        if legacy:
            entry.update(filters=filters, biases=biases)
        else:
            entry["weights"] = _pair_cell(filters, biases)
        return entry

    conv_iter = iter(src.convs)
    for block, count in enumerate(BLOCKS, start=1):
        for i in range(1, count + 1):
            w, b = next(conv_iter)
            layers.append(conv_struct(f"conv{block}_{i}", w, b, pad=1))
            layers.append({"name": f"relu{block}_{i}", "type": "relu", "leak": 0.0})
        layers.append({"name": f"pool{block}", "type": "pool", "method": "max", "pool": np.array([[2, 2]], float),
                       "stride": np.array([[2, 2]], float), "pad": np.zeros((1, 4))})
    for name, (w, b) in zip(("fc6", "fc7", "fc8"), src.fcs):
        layers.append(conv_struct(name, w, b, pad=0))
        if name != "fc8":
            layers.append({"name": "relu" + name[2:], "type": "relu", "leak": 0.0})
    layers.append({"name": "prob", "type": "softmax"})
    names = class_names or [f"synthetic class {i}, number {i}" for i in range(src.num_classes)]
    description = np.empty((1, len(names)), dtype=object)
    for i, n in enumerate(names):
        description[0, i] = n
    normalization = {"averageImage": np.array(mean, dtype=np.float32).reshape(1, 1, 3),
                     "imageSize": np.array([[224, 224, 3]], float), "interpolation": "bilinear"}
    classes = {"name": description, "description": description}
    content: dict = {"layers": _struct_cell(layers)}
    if legacy:
        # Old files stored a whole mean *image*; its spatial mean is the per-channel mean.
        content["normalization"] = {"averageImage": np.tile(np.array(mean, np.float32), (4, 4, 1))}
        content["classes"] = classes
    else:
        content["meta"] = {"normalization": normalization, "classes": classes}
    scipy.io.savemat(str(path), content, oned_as="row")
    return path


def matconvnet_reference_logits(src: SourceWeights, image_hwc_0_255: np.ndarray, mean: tuple[float, ...]) -> np.ndarray:
    """MatConvNet's forward pass on one HxWx3 image in 0..255, in float64 NumPy.

    vl_nnconv computes y(i, j, k) = b(k) + sum_{h, w, c} F(h, w, c, k) x(i + h, j + w, c)
    on zero-padded HWC maps (no kernel flip); vl_nnpool takes 2x2 maxima; fc6 is a
    "valid" convolution of the g x g pool5 map with g x g filters.
    """
    x = image_hwc_0_255.astype(np.float64) - np.asarray(mean, dtype=np.float64)
    conv_iter = iter(src.convs)
    for count in BLOCKS:
        for _ in range(count):
            w, b = next(conv_iter)
            x = np.maximum(_conv_hwc(np.pad(x, ((1, 1), (1, 1), (0, 0))), w.transpose(2, 3, 1, 0), b), 0)
        h, w_ = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
        x = x[:h, :w_].reshape(h // 2, 2, w_ // 2, 2, -1).max(axis=(1, 3))
    for i, (w, b) in enumerate(src.fcs):
        x = _conv_hwc(x, w.transpose(2, 3, 1, 0), b)
        if i < 2:
            x = np.maximum(x, 0)
    return x.reshape(-1)


def _conv_hwc(x: np.ndarray, filters_hwio: np.ndarray, bias: np.ndarray) -> np.ndarray:
    kh, kw = filters_hwio.shape[:2]
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(0, 1))  # (H', W', C, kh, kw)
    return np.einsum("ijchw,hwck->ijk", windows, filters_hwio.astype(np.float64)) + bias


def main() -> None:
    """Write tiny random VGG19 weights for trying the CLI offline (meaningless classes)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("output", type=Path, help="a .pth (torchvision layout) or .mat (MatConvNet layout) path")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    src = random_weights(num_classes=args.classes, seed=args.seed)
    if args.output.suffix == ".mat":
        write_matconvnet_mat(src, args.output)
    else:
        write_torchvision_pth(src, args.output)
    print(args.output)


if __name__ == "__main__":
    main()


def random_adain_network(vgg: nn.Module, seed: int = 0) -> nn.Module:
    """An AdaINNet on ``vgg`` whose random decoder carries the signal through: He-initialised
    convolutions, the last one scaled so a probe image decodes to pixels spread around
    mid-grey (the default initialisation decodes nearly every image to one colour, which
    would make comparisons of outputs vacuous)."""
    from styleforge.nets.adain import AdaINNet

    torch.manual_seed(seed)
    net = AdaINNet(vgg).eval()
    convs = [m for m in net.decoder if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        for conv in convs:
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            conv.bias.zero_()
        probe = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(seed)) * 255
        spread = float(net.decoder(net.target(probe, [probe.flip(2)])).std())
        convs[-1].weight.mul_(0.25 / spread)
        convs[-1].bias.fill_(0.5)
    return net
