"""Torch7 files as jcjohnson/fast-neural-style saves them, written here byte by byte
(the binary format of torch7's File.lua: type tags, reference indices, "V 1" version
strings, tensors with sizes/strides/1-based offsets over typed storages), and an
independent reference forward pass of that network from its published description
(models.lua, preprocess.lua). Nothing here imports styleforge's network."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

NIL, NUMBER, STRING, TABLE, TORCH, BOOLEAN = 0, 1, 2, 3, 4, 5
VGG_MEAN_BGR = np.array([103.939, 116.779, 123.68])


@dataclass
class Obj:
    """A Torch class instance: its type name and its fields (a Lua table)."""

    typename: str
    fields: dict[str, Any] = field(default_factory=dict)


class T7Writer:
    """Serialise Python values as torch.save(..., 'binary') does."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.next_index = 1

    def _int(self, value: int) -> None:
        self.chunks.append(struct.pack("<i", value))

    def _long(self, value: int) -> None:
        self.chunks.append(struct.pack("<q", value))

    def _string(self, text: str) -> None:
        data = text.encode()
        self._int(len(data))
        self.chunks.append(data)

    def _reference(self) -> None:
        self._int(self.next_index)
        self.next_index += 1

    def write(self, value: Any) -> None:
        if value is None:
            self._int(NIL)
        elif isinstance(value, bool):
            self._int(BOOLEAN)
            self._int(int(value))
        elif isinstance(value, (int, float)):
            self._int(NUMBER)
            self.chunks.append(struct.pack("<d", float(value)))
        elif isinstance(value, str):
            self._int(STRING)
            self._string(value)
        elif isinstance(value, np.ndarray):
            self._tensor(value)
        elif isinstance(value, Obj):
            self._int(TORCH)
            self._reference()
            self._string("V 1")
            self._string(value.typename)
            self.write(value.fields)
        elif isinstance(value, (dict, list)):
            items = value.items() if isinstance(value, dict) else ((i + 1, v) for i, v in enumerate(value))
            items = list(items)
            self._int(TABLE)
            self._reference()
            self._int(len(items))
            for key, item in items:
                self.write(key)
                self.write(item)
        else:
            raise TypeError(type(value))

    def _tensor(self, array: np.ndarray) -> None:
        array = np.ascontiguousarray(array, dtype=np.float32)
        self._int(TORCH)
        self._reference()
        self._string("V 1")
        self._string("torch.FloatTensor")
        self._int(array.ndim)
        for size in array.shape:
            self._long(size)
        for stride in (s // 4 for s in array.strides):
            self._long(stride)
        self._long(1)  # storage offset, 1-based
        if array.size == 0:
            self._int(NIL)
            return
        self._int(TORCH)
        self._reference()
        self._string("V 1")
        self._string("torch.FloatStorage")
        self._long(array.size)
        self.chunks.append(array.tobytes())

    def bytes(self) -> bytes:
        return b"".join(self.chunks)


def save_t7(value: Any, path: Path) -> Path:
    writer = T7Writer()
    writer.write(value)
    path.write_bytes(writer.bytes())
    return path


# ----------------------------------------------------------------------------- the model


def _module(kind: str, **fields: Any) -> Obj:
    return Obj(f"nn.{kind}", {"output": np.zeros(0, np.float32), "gradInput": np.zeros(0, np.float32), "train": False,
                              "_type": "torch.FloatTensor", **fields})


def _conv(rng: np.random.Generator, c_in: int, c_out: int, k: int, stride: int, pad: int, full: bool = False) -> Obj:
    shape = (c_in, c_out, k, k) if full else (c_out, c_in, k, k)
    weight = rng.normal(0, (2.0 / (c_in * k * k)) ** 0.5, size=shape).astype(np.float32)
    fields = {"nInputPlane": c_in, "nOutputPlane": c_out, "kW": k, "kH": k, "dW": stride, "dH": stride, "padW": pad,
              "padH": pad, "weight": weight, "bias": rng.normal(0, 0.1, c_out).astype(np.float32)}
    if full:
        fields |= {"adjW": 1, "adjH": 1}
    return _module("SpatialFullConvolution" if full else "SpatialConvolution", **fields)


def _norm(rng: np.random.Generator, channels: int, batch: bool) -> Obj:
    fields = {"eps": 1e-5, "weight": rng.uniform(0.5, 1.5, channels).astype(np.float32),
              "bias": rng.uniform(-0.5, 0.5, channels).astype(np.float32)}
    if batch:
        fields |= {"running_mean": rng.normal(0, 0.5, channels).astype(np.float32),
                   "running_var": rng.uniform(0.5, 2.0, channels).astype(np.float32), "momentum": 0.1, "affine": True}
        return _module("SpatialBatchNormalization", **fields)
    return _module("InstanceNormalization", nOutput=channels, prev_N=-1, **fields)


def jcjohnson_model(seed: int = 0, batch_norm: bool = False, preprocessing: str | None = "vgg",
                    tanh_constant: float = 150.0) -> dict:
    """``{model = nn.Sequential, opt = {...}}`` with random weights, as train.lua saves it."""
    rng = np.random.default_rng(seed)
    layers: list[Obj] = [_module("SpatialReflectionPadding", pad_l=40, pad_r=40, pad_t=40, pad_b=40)]
    for c_in, c_out, k, stride in ((3, 32, 9, 1), (32, 64, 3, 2), (64, 128, 3, 2)):
        layers += [_conv(rng, c_in, c_out, k, stride, k // 2), _norm(rng, c_out, batch_norm), _module("ReLU", inplace=True)]
    for _ in range(5):
        branch = _module("Sequential", modules=[_conv(rng, 128, 128, 3, 1, 0), _norm(rng, 128, batch_norm),
                                                _module("ReLU", inplace=True), _conv(rng, 128, 128, 3, 1, 0),
                                                _norm(rng, 128, batch_norm)])
        concat = _module("ConcatTable", modules=[branch, _module("ShaveImage", size=2)])
        layers.append(_module("Sequential", modules=[concat, _module("CAddTable", inplace=False)]))
    for c_in, c_out in ((128, 64), (64, 32)):
        layers += [_conv(rng, c_in, c_out, 3, 2, 1, full=True), _norm(rng, c_out, batch_norm), _module("ReLU", inplace=True)]
    layers += [_conv(rng, 32, 3, 9, 1, 4), _module("Tanh"), _module("MulConstant", constant_scalar=tanh_constant, inplace=False),
               _module("TotalVariation", strength=1e-6)]
    opt: dict[str, Any] = {"arch": "c9s1-32,d64,d128,R128,R128,R128,R128,R128,u64,u32,c9s1-3", "padding_type": "reflect-start",
                           "tanh_constant": tanh_constant, "use_instance_norm": 0 if batch_norm else 1}
    if preprocessing is not None:
        opt["preprocessing"] = preprocessing
    return {"model": _module("Sequential", modules=layers), "opt": opt}


# ----------------------------------------------------------------------------- reference


def _t(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(array, dtype=np.float64))


def _run(module: Obj, x: torch.Tensor) -> torch.Tensor:
    """One module's updateOutput, from its description in fast-neural-style and nn."""
    f, kind = module.fields, module.typename.split(".")[-1]
    if kind == "SpatialReflectionPadding":
        return F.pad(x, (f["pad_l"], f["pad_r"], f["pad_t"], f["pad_b"]), mode="reflect")
    if kind == "SpatialConvolution":
        return F.conv2d(x, _t(f["weight"]), _t(f["bias"]), stride=f["dW"], padding=f["padW"])
    if kind == "SpatialFullConvolution":
        return F.conv_transpose2d(x, _t(f["weight"]), _t(f["bias"]), stride=f["dW"], padding=f["padW"], output_padding=f["adjW"])
    if kind == "InstanceNormalization":
        mean, var = x.mean(dim=(2, 3), keepdim=True), x.var(dim=(2, 3), unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + f["eps"]) * _t(f["weight"]).view(1, -1, 1, 1) + _t(f["bias"]).view(1, -1, 1, 1)
    if kind == "SpatialBatchNormalization":
        mean, var = _t(f["running_mean"]).view(1, -1, 1, 1), _t(f["running_var"]).view(1, -1, 1, 1)
        return (x - mean) / torch.sqrt(var + f["eps"]) * _t(f["weight"]).view(1, -1, 1, 1) + _t(f["bias"]).view(1, -1, 1, 1)
    if kind == "ReLU":
        return x.clamp_min(0)
    if kind == "Tanh":
        return torch.tanh(x)
    if kind == "MulConstant":
        return x * f["constant_scalar"]
    if kind == "TotalVariation":
        return x
    if kind == "Sequential":
        for child in f["modules"]:
            x = _run(child, x)
        return x
    if kind == "ConcatTable":
        return [_run(child, x) for child in f["modules"]]  # type: ignore[return-value]
    if kind == "CAddTable":
        return x[0] + x[1]  # type: ignore[index]
    if kind == "ShaveImage":
        s = f["size"]
        return x[:, :, s:-s, s:-s]
    raise ValueError(kind)


def reference_stylise(checkpoint: dict, rgb: np.ndarray) -> np.ndarray:
    """fast_neural_style.lua on one (H, W, 3) RGB 0-255 image (sides multiples of 4): preprocess,
    forward, deprocess; returns RGB 0-255 floats, clipped as image.save does."""
    x = _t(rgb).permute(2, 0, 1)[None] / 255.0  # image.load: [0, 1]
    method = checkpoint["opt"].get("preprocessing", "vgg")
    if method == "vgg":
        pre = x.flip(1) * 255.0 - _t(VGG_MEAN_BGR).view(1, 3, 1, 1)
    else:
        pre = (x - _t([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / _t([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    out = _run(checkpoint["model"], pre)
    if method == "vgg":
        post = (out + _t(VGG_MEAN_BGR).view(1, 3, 1, 1)).flip(1)
    else:
        post = (out * _t([0.229, 0.224, 0.225]).view(1, 3, 1, 1) + _t([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) * 255.0
    return post[0].permute(1, 2, 0).clamp(0, 255).numpy()
