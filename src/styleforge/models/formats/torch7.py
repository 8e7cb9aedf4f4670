"""jcjohnson/fast-neural-style ``.t7`` models (``instance_norm/candy.t7``, ``eccv16/the_wave.t7``...).

The files are Torch7 serialisations of ``{model = nn.Sequential, opt = {...}}``, read with
the ``torchfile`` package, which parses the format and never runs any of it (Lua
functions in a file stay opaque bytes). The model is the course's table 4.3 as published
(``fast_neural_style/models.lua`` with ``-padding_type reflect-start``)::

    SpatialReflectionPadding(40)             inserted at the first training step
    SpatialConvolution 9x9, 3->32, pad 4     + InstanceNormalization | SpatialBatchNormalization, ReLU
    SpatialConvolution 3x3 /2, 32->64, pad 1 + norm, ReLU
    SpatialConvolution 3x3 /2, 64->128       + norm, ReLU
    5 x Sequential{ConcatTable{Sequential{conv 3x3 pad 0, norm, ReLU, conv 3x3 pad 0, norm},
                               ShaveImage(2)}, CAddTable}
    SpatialFullConvolution 3x3 /2, 128->64   + norm, ReLU
    SpatialFullConvolution 3x3 /2, 64->32    + norm, ReLU
    SpatialConvolution 9x9, 32->3, pad 4
    Tanh, MulConstant(tanh_constant), TotalVariation (identity when stylising)

which is :class:`~styleforge.nets.transform_net.TransformNet` with ``padding="input"``,
``upsample="deconv"``. The pixels follow ``opt.preprocessing``: ``vgg`` (the default)
feeds BGR 0-255 minus the VGG mean and adds the mean back to the output; ``resnet``
feeds RGB [0, 1] standardised by the ImageNet mean and deviation and undoes that on the
output. Their script's optional 3x3 median filter on the result is not part of the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from styleforge.errors import StyleforgeError, one_line
from styleforge.nets.transform_net import INPUT_PAD

VGG_MEAN_BGR = (103.939, 116.779, 123.68)
RESNET_MEAN = (0.485, 0.456, 0.406)
RESNET_STD = (0.229, 0.224, 0.225)


def convert_torch7(file: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """TransformNet state dict and convention of a jcjohnson ``.t7`` model.

    Raises:
        StyleforgeError: unreadable file, or a module that does not fit (named, with its position).
    """
    root = _load(file)
    model = _field(root, "model") if _typename(root) is None else root
    opt = _field(root, "opt") if _typename(root) is None else None
    layers = _Layers(file, model)
    layers.expect("SpatialReflectionPadding", check=lambda m: _pads(m) == (INPUT_PAD,) * 4,
                  wanted=f"a {INPUT_PAD}-pixel reflection pad (padding_type reflect-start)")
    state: dict[str, torch.Tensor] = {}
    norm = None
    for prefix, c_in, c_out, kernel, stride in (("conv1", 3, 32, 9, 1), ("conv2", 32, 64, 3, 2), ("conv3", 64, 128, 3, 2)):
        state |= layers.conv(f"{prefix}.conv", c_in, c_out, kernel, stride, kernel // 2)
        norm_state, norm = layers.norm(f"norm{prefix[-1]}", c_out, norm)
        state |= norm_state
        layers.expect("ReLU")
    for block in range(5):
        state |= layers.residual(f"residuals.{block}", norm)
    for prefix, norm_prefix, c_in, c_out in (("up1", "norm4", 128, 64), ("up2", "norm5", 64, 32)):
        state |= layers.full_conv(f"{prefix}.deconv", c_in, c_out)
        norm_state, norm = layers.norm(norm_prefix, c_out, norm)
        state |= norm_state
        layers.expect("ReLU")
    state |= layers.conv("conv_out.conv", 32, 3, 9, 1, 4)
    layers.expect("Tanh")
    scale = float(layers.expect("MulConstant").constant_scalar)
    layers.skip_optional("TotalVariation")
    layers.end()
    convention = {"norm": norm or "instance", "upsample": "deconv", "output": "tanh", "padding": "input",
                  **_pixels(file, opt, scale)}
    return state, convention


def _load(file: Path) -> Any:
    import torchfile

    try:
        return torchfile.load(str(file))
    except Exception as exc:  # torchfile raises struct.error, T7ReaderException, ValueError... on damaged files
        raise StyleforgeError(f"cannot read Torch7 file '{file}': {one_line(exc, 160)}") from None


def _typename(obj: Any) -> str | None:
    """The Torch class name of a torchfile object (None for tables and plain values)."""
    import torchfile

    if not isinstance(obj, torchfile.TorchObject):
        return None
    name = obj.torch_typename()
    return name.decode("latin-1") if isinstance(name, bytes) else name


def _field(obj: Any, key: str) -> Any:
    """``obj.key`` of a Lua table or Torch object read by torchfile (keys are bytes)."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key.encode(), obj.get(key))
    return getattr(obj, key, None)


def _pads(module: Any) -> tuple[int, ...]:
    return tuple(int(_field(module, k) or 0) for k in ("pad_l", "pad_r", "pad_t", "pad_b"))


def _pixels(file: Path, opt: Any, tanh_constant: float) -> dict[str, str]:
    """The convention fields of ``opt.preprocessing`` (``vgg`` when absent)."""
    method = _field(opt, "preprocessing") or b"vgg"
    method = method.decode("latin-1") if isinstance(method, bytes) else str(method)

    def text(values: tuple[float, ...]) -> str:
        return ",".join(repr(float(v)) for v in values)

    if method == "vgg":
        return {"channel_order": "bgr", "input_mean": text(VGG_MEAN_BGR), "input_divisor": "1",
                "output_scale": repr(tanh_constant), "output_offset": text(VGG_MEAN_BGR)}
    if method == "resnet":
        return {"channel_order": "rgb", "input_mean": text(tuple(255 * m for m in RESNET_MEAN)),
                "input_divisor": text(tuple(255 * s for s in RESNET_STD)),
                "output_scale": text(tuple(255 * tanh_constant * s for s in RESNET_STD)),
                "output_offset": text(tuple(255 * m for m in RESNET_MEAN))}
    raise StyleforgeError(f"'{file}': unknown preprocessing {method!r} in opt (expected vgg or resnet)")


def _tensor(value: Any, shape: tuple[int, ...], where: str) -> torch.Tensor:
    array = np.asarray(value, dtype=np.float32) if value is not None else None
    if array is None or array.size != int(np.prod(shape)):
        got = "nothing" if array is None else f"shape {array.shape}"
        raise StyleforgeError(f"{where}: expected {shape} values, found {got}")
    return torch.from_numpy(np.ascontiguousarray(array).reshape(shape).copy())


class _Layers:
    """A cursor over a Sequential's modules, flattening nothing: residual blocks are matched whole."""

    def __init__(self, file: Path, model: Any, label: str = "") -> None:
        self.file, self.label = file, label
        if _short(_typename(model)) != "Sequential":
            raise StyleforgeError(f"'{file}': the model is {_typename(model)!r}, not the nn.Sequential of fast-neural-style")
        self.modules: list[Any] = list(_field(model, "modules") or [])
        self.index = 0

    def _where(self) -> str:
        """Names the next module: its 1-based position (inside a residual block: the block's too)."""
        return f"'{self.file}': {self.label}module {self.index + 1}"

    def expect(self, kind: str, check: Any = None, wanted: str | None = None) -> Any:
        """The next module, which must be ``kind`` (nn. or cudnn.) and pass ``check``."""
        if self.index >= len(self.modules):
            raise StyleforgeError(f"{self._where()}: the model ends where {wanted or kind} was expected")
        module = self.modules[self.index]
        name = _typename(module)
        if _short(name) != kind or (check is not None and not check(module)):
            raise StyleforgeError(f"{self._where()} ({name}) does not fit the fast-neural-style network: "
                                  f"expected {wanted or kind}")
        self.index += 1
        return module

    def skip_optional(self, kind: str) -> None:
        """Step over the next module if it is ``kind``."""
        if self.index < len(self.modules) and _short(_typename(self.modules[self.index])) == kind:
            self.index += 1

    def end(self) -> None:
        """Refuse trailing modules."""
        if self.index != len(self.modules):
            name = _typename(self.modules[self.index])
            raise StyleforgeError(f"{self._where()} ({name}) does not fit the fast-neural-style network: "
                                  "expected the end of the model")

    def conv(self, prefix: str, c_in: int, c_out: int, kernel: int, stride: int, pad: int) -> dict[str, torch.Tensor]:
        """A SpatialConvolution with these sizes, as ``prefix.weight/bias``."""
        def fits(m: Any) -> bool:
            return (int(_field(m, "nInputPlane")), int(_field(m, "nOutputPlane")), int(_field(m, "kW")), int(_field(m, "kH")),
                    int(_field(m, "dW")), int(_field(m, "dH")), int(_field(m, "padW") or 0), int(_field(m, "padH") or 0)) == (
                    c_in, c_out, kernel, kernel, stride, stride, pad, pad)

        wanted = f"SpatialConvolution {c_in}->{c_out}, {kernel}x{kernel}, stride {stride}, pad {pad}"
        where = self._where()
        module = self.expect("SpatialConvolution", fits, wanted)
        return {f"{prefix}.weight": _tensor(_field(module, "weight"), (c_out, c_in, kernel, kernel), where),
                f"{prefix}.bias": _tensor(_field(module, "bias"), (c_out,), where)}

    def full_conv(self, prefix: str, c_in: int, c_out: int) -> dict[str, torch.Tensor]:
        """A SpatialFullConvolution 3x3, stride 2, pad 1, adj 1 (x2 upsampling)."""
        def fits(m: Any) -> bool:
            return (int(_field(m, "nInputPlane")), int(_field(m, "nOutputPlane")), int(_field(m, "kW")), int(_field(m, "dW")),
                    int(_field(m, "padW") or 0), int(_field(m, "adjW") or 0)) == (c_in, c_out, 3, 2, 1, 1)

        where = self._where()
        module = self.expect("SpatialFullConvolution", fits, f"SpatialFullConvolution {c_in}->{c_out}, 3x3, stride 2")
        return {f"{prefix}.weight": _tensor(_field(module, "weight"), (c_in, c_out, 3, 3), where),
                f"{prefix}.bias": _tensor(_field(module, "bias"), (c_out,), where)}

    def norm(self, prefix: str, channels: int, kind: str | None) -> tuple[dict[str, torch.Tensor], str]:
        """An InstanceNormalization or (eval-mode) SpatialBatchNormalization, the same kind throughout."""
        where = self._where()
        if self.index >= len(self.modules):
            raise StyleforgeError(f"{where}: the model ends where a normalisation was expected")
        found = _short(_typename(self.modules[self.index]))
        found_kind = {"InstanceNormalization": "instance", "SpatialBatchNormalization": "batch"}.get(found or "")
        if found_kind is None or (kind is not None and found_kind != kind):
            self.expect("InstanceNormalization" if kind != "batch" else "SpatialBatchNormalization")
        module = self.modules[self.index]
        self.index += 1
        eps = float(_field(module, "eps") or 1e-5)
        if not np.isclose(eps, 1e-5, rtol=1e-3):
            raise StyleforgeError(f"{where} ({found}): epsilon {eps:g}, not the 1e-5 TransformNet uses")
        state = {f"{prefix}.weight": _tensor(_field(module, "weight"), (channels,), where),
                 f"{prefix}.bias": _tensor(_field(module, "bias"), (channels,), where)}
        if found_kind == "batch":
            state |= {f"{prefix}.running_mean": _tensor(_field(module, "running_mean"), (channels,), where),
                      f"{prefix}.running_var": _tensor(_field(module, "running_var"), (channels,), where),
                      f"{prefix}.num_batches_tracked": torch.tensor(0)}
        return state, found_kind

    def residual(self, prefix: str, kind: str | None) -> dict[str, torch.Tensor]:
        """Sequential{ConcatTable{Sequential{conv, norm, ReLU, conv, norm}, ShaveImage(2)}, CAddTable}."""
        where = self._where()
        block = self.expect("Sequential", wanted="a residual block (Sequential of ConcatTable and CAddTable)")
        parts = list(_field(block, "modules") or [])
        names = [_short(_typename(m)) for m in parts]
        branches = list(_field(parts[0], "modules") or []) if parts else []
        if names != ["ConcatTable", "CAddTable"] or len(branches) != 2 or _short(_typename(branches[1])) != "ShaveImage" \
                or int(_field(branches[1], "size") or 0) != 2:
            raise StyleforgeError(f"{where}: residual block {names} does not fit fast-neural-style's unpadded block "
                                  "(ConcatTable{conv block, ShaveImage(2)}, CAddTable)")
        inner = _Layers(self.file, branches[0], label=f"residual block at module {self.index}, ")
        state = inner.conv(f"{prefix}.conv1.conv", 128, 128, 3, 1, 0)
        norm_state, kind = inner.norm(f"{prefix}.norm1", 128, kind)
        inner.expect("ReLU")
        state |= norm_state | inner.conv(f"{prefix}.conv2.conv", 128, 128, 3, 1, 0)
        state |= inner.norm(f"{prefix}.norm2", 128, kind)[0]
        inner.end()
        return state


def _short(name: str | None) -> str | None:
    """``nn.ReLU`` / ``cudnn.ReLU`` -> ``ReLU``."""
    return name.rpartition(".")[2] if name else None

