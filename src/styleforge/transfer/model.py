"""Trained style models: saving, loading, and stylising images, folders and huge images.

A model is two files side by side: ``NAME.safetensors`` (the transform network's
weights; metadata: format, norm, upsample) and ``NAME.json`` (style image name and a
base64 PNG thumbnail, training options, steps, final losses, date).

Large images are stylised in overlapping tiles (``tile`` x ``tile``, ``overlap`` pixels
shared with each neighbour) whose outputs are blended with linear ramps across the
overlaps, so no seam shows; each tile is run with up to 64 pixels of surrounding image
as context, cropped afterwards. Instance normalisation would otherwise normalise each tile
with its own statistics and make tiles disagree; so the statistics of every
normalisation layer are first recorded on the whole image (downscaled to at most
``stats_pixels``) and then frozen while the tiles run. Batch norm in eval mode already
uses fixed statistics.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from styleforge.config import TransferOptions, is_finite
from styleforge.devices import autocast, describe_device, resolve_device, resolve_precision, synchronize
from styleforge.errors import StyleforgeError
from styleforge.images.color import match_color_histogram, restore_chroma
from styleforge.images.io import read_image, resize_long_side, write_image
from styleforge.models.loading import ADAIN, STYLE_VECTOR, ModelInfo, StyleNetwork, load_network
from styleforge.models.option_rules import checked_model_info
from styleforge.models.store import resolve_model_file
from styleforge.nets.adain import AdaINNet, AdaINStylizer, blend_statistics
from styleforge.nets.transform_net import TransformNet, use_power_difference, weaken_instance_norms
from styleforge.transfer.plan import TransferItem, validate_transfer_options


@dataclass
class StyleModel:
    """A loaded style network. ``stylize(image)`` takes and returns PIL images of any size.

    ``net`` is any :class:`~styleforge.models.loading.StyleNetwork`: the PyTorch
    transform network, an AdaIN or style-vector stylizer around one, or an exported
    ``.onnx`` network called the same way.
    """

    net: StyleNetwork
    metadata: dict
    device: torch.device
    options: TransferOptions

    @property
    def device_description(self) -> str:
        """Where the network runs, for reports (the ONNX Runtime provider for .onnx models)."""
        return getattr(self.net, "device_description", None) or describe_device(self.device)

    @property
    def memory_format(self) -> torch.memory_format:
        """channels_last on the CPU, in every precision (oneDNN's fast path: 815 against
        998 ms per 512 px image in fp32 on a 2-core Zen 3, and the fast bf16 path); plain
        NCHW on CUDA (faster for this network there, benchmarks/transfer.py)."""
        return torch.channels_last if self.device.type == "cpu" else torch.contiguous_format

    def __post_init__(self) -> None:
        # Whole images go through the compiled network when asked (the fused kernels), and
        # on CUDA through CUDA graphs for repeated shapes (video frames, folders of one
        # size: no launch overhead), compiled or not. Tiles always use the eager network
        # (their varying shapes would each trigger a recompilation).
        forward: Callable[[torch.Tensor], torch.Tensor] = self.net
        if self.options.compile:
            from styleforge.utils.compiling import compile_network

            forward = compile_network(self.net)
        if self.options.cuda_graphs and self.device.type == "cuda" and isinstance(self.net, torch.nn.Module):
            from styleforge.utils.cuda_graphs import GraphedCalls

            forward = GraphedCalls(forward)
        self.forward = forward

    def stylize(self, image: Image.Image, size: int | None = None, tile: int | None = None,
                resize: bool = True) -> Image.Image:
        """Stylise one image (resized so its long side is ``size``, or ``options.size``,
        unless ``resize`` is false; tiled when ``tile`` is given or the image exceeds
        ``options.auto_tile_pixels``)."""
        image = _resized(image.convert("RGB"), (size if size is not None else self.options.size) if resize else None)
        tile = tile or self.options.tile
        width, height = image.size
        if tile is None and width * height > self.options.auto_tile_pixels:
            tile = 1024
        x = images_to_tensor([image], self.device).contiguous(memory_format=self.memory_format)
        with torch.inference_mode(), autocast(self.device, self.options.precision):
            if tile is not None and max(width, height) > tile:
                overlap = min(self.options.tile_overlap, tile // 4)  # small tiles get a proportional overlap
                y = stylize_tiled(self.net, x, tile, overlap, self.options.stats_pixels)
            else:
                y = self.forward(x)
        return self.finish(tensor_to_images(y)[0], image)

    def stylize_batch(self, images: list[Image.Image]) -> list[Image.Image]:
        """Stylise same-size images: in one forward pass on CUDA, one image per pass on the
        CPU (see :meth:`images_per_pass`); returns the stylised images in order."""
        if len({img.size for img in images}) != 1:
            raise StyleforgeError("stylize_batch needs images of one size")
        photos = [img.convert("RGB") for img in images]
        x = images_to_tensor(photos, self.device).contiguous(memory_format=self.memory_format)
        passes = x.split(self.images_per_pass(len(photos)))
        with torch.inference_mode(), autocast(self.device, self.options.precision):
            outputs = [image for part in passes for image in tensor_to_images(self.forward(part))]
        return [self.finish(out, photo) for out, photo in zip(outputs, photos, strict=True)]

    def images_per_pass(self, count: int) -> int:
        """How many of ``count`` same-size images one forward pass takes: all of them on
        CUDA (batches fill the GPU), one on the CPU. There oneDNN already spreads one
        image's convolutions over every core, and a batch only enlarges the working set
        and takes instance norm off its fast single-image path: ``stylize_batch`` of 4
        images of 256 px took 1192 ms as one batch and 724 ms one by one, of 4 640x360
        frames 4614 against 2529 ms (fp32 on a 2-core Zen 3, interleaved A/B; the bare
        network was faster one by one from 64 px up)."""
        return count if self.device.type != "cpu" else 1

    def finish(self, stylised: Image.Image, photo: Image.Image) -> Image.Image:
        """Apply ``options.preserve_color`` and ``options.strength`` to the network's
        output ``stylised`` of ``photo`` (same size)."""
        if self.options.preserve_color == "luminance":
            stylised = restore_chroma(stylised, photo)
        elif self.options.preserve_color == "histogram":
            stylised = match_color_histogram(stylised, photo)
        if self.options.strength < 1.0 and self.options.strength_mode == "pixel":
            stylised = Image.blend(photo, stylised, self.options.strength)
        return stylised


def load_style_model(path: str | os.PathLike[str], device: str | torch.device = "cpu",
                     options: TransferOptions | None = None) -> StyleModel:
    """Load a trained model: ``NAME.safetensors`` (with its optional ``NAME.json``), the
    name of an installed model (``styleforge models``), an exported ``.onnx``, or a
    training checkpoint (``checkpoint.pt``, read with ``weights_only=True``), which gives
    the network as of the checkpoint's step. The file is read through
    :func:`~styleforge.models.loading.load_network`; options that do not apply to it are
    refused from its header first (:mod:`~styleforge.models.option_rules`).

    Raises:
        StyleforgeError: missing or unreadable file, not a styleforge style model, or an
            option that does not apply to it.
    """
    file = resolve_model_file(path)
    opts = validate_transfer_options(options or TransferOptions(device=str(device)))
    info = checked_model_info(file, opts)
    if info.runtime == "onnx":
        return _onnx_style_model(info, opts)
    net, metadata = load_network(file)
    dev = resolve_device(opts.device if options else device)
    opts = dataclasses.replace(opts, precision=resolve_precision(opts.precision, dev))
    if info.kind == ADAIN:
        return _adain_style_model(file, net, metadata, opts, dev)
    if info.kind == STYLE_VECTOR:
        return _style_vector_model(file, net, metadata, opts, dev)
    use_power_difference(net, opts.power_difference)
    if opts.style_weights is not None:
        net.select_styles(style_mix(opts.style_weights, info.style_names, net.styles))
    if opts.strength_mode == "norm":
        weaken_instance_norms(net, opts.strength)
    model = StyleModel(net.eval().requires_grad_(False), metadata, dev, opts)
    model.net.to(dev, memory_format=model.memory_format)
    return model


def _adain_style_model(file: Path, net: AdaINNet, metadata: dict, opts: TransferOptions, device: torch.device) -> StyleModel:
    """A StyleModel stylising toward ``opts.styles`` (blended by ``opts.style_weights``) with an AdaIN network."""
    net = net.to(device)
    with torch.inference_mode():
        mean, std, styles = adain_style(file, opts, lambda pixels: net.style_statistics(pixels.to(device)))
    model = StyleModel(AdaINStylizer(net, mean, std, opts.alpha).eval(), {**metadata, **styles}, device, opts)
    model.net.to(device, memory_format=model.memory_format)
    return model


def _style_vector_model(file: Path, net: TransformNet, metadata: dict, opts: TransferOptions, device: torch.device) -> StyleModel:
    """A StyleModel of the PyTorch style-vector network ``net`` (magenta-arbitrary)."""
    use_power_difference(net, opts.power_difference)
    stylizer, styles = style_vector_stylizer(file, net, metadata, opts)
    model = StyleModel(stylizer.eval().requires_grad_(False), {**metadata, **styles}, device, opts)
    model.net.to(device, memory_format=model.memory_format)
    return model


def style_vector_stylizer(file: Path, net: object, metadata: dict, opts: TransferOptions) -> tuple[torch.nn.Module, dict]:
    """``net`` (a style-vector TransformNet or its ONNX export) conditioned on the vector of
    ``opts.styles``, moving toward each photo's own with ``--strength-mode norm``
    (:class:`~styleforge.nets.transform_net.StyleVectorStylizer`), and the metadata naming the
    paintings. The predictor is the one ``metadata`` names beside ``file``.

    Raises:
        StyleforgeError: --alpha given, the predictor missing or altered, no painting.
    """
    from styleforge.models.formats.magenta import load_style_predictor
    from styleforge.nets.transform_net import StyleVectorStylizer

    predictor = load_style_predictor(file, metadata)
    vector, styles = style_vector(file, opts, predictor)
    strength = opts.strength if opts.strength_mode == "norm" else 1.0
    own_vector = lambda x: torch.from_numpy(predictor(tensor_to_images(x)[0]))  # noqa: E731 (the photo's own style)
    return StyleVectorStylizer(net, vector, strength, own_vector), styles


def style_vector(file: Path, opts: TransferOptions, predict: Callable[[Image.Image], np.ndarray]) -> tuple[torch.Tensor, dict]:
    """The style vector of ``opts.styles`` for the style-vector model ``file``: each
    painting's vector by ``predict``, averaged with ``opts.style_weights`` (equal weights
    when absent), and the metadata naming them.

    Raises:
        StyleforgeError: no style given, an unreadable style image or bad weights.
    """
    names = [Path(style).stem for style in opts.styles]
    weights = style_mix(opts.style_weights, names, len(names), given=True) if opts.style_weights is not None else None
    vectors = np.stack([predict(read_image(style)) for style in opts.styles])
    vector = np.average(vectors, axis=0, weights=weights)
    styles = [{"name": name, "style_image": str(style)} for name, style in zip(names, opts.styles, strict=True)]
    return torch.from_numpy(vector.astype(np.float32)), {"styles": styles, "style_image": " + ".join(names)}


def adain_style(file: Path, opts: TransferOptions, statistics: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
                ) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """The blended relu4_1 (mean, std) of ``opts.styles`` for the AdaIN model ``file``, and the
    metadata naming them. Each style image is resized to ``opts.style_size`` (long side) and
    centre-cropped to multiples of 8, so the encoder sees the same pixels in every runtime.

    Raises:
        StyleforgeError: no style given, an unreadable style image, bad weights, or an
            option that does not apply to AdaIN.
    """
    names = [Path(style).stem for style in opts.styles]
    weights = style_mix(opts.style_weights, names, len(names), given=True) if opts.style_weights is not None else None
    found = [statistics(_style_pixels(read_image(style), opts.style_size)) for style in opts.styles]
    mean, std = blend_statistics([(torch.as_tensor(m), torch.as_tensor(s)) for m, s in found], weights)
    styles = [{"name": name, "style_image": str(style)} for name, style in zip(names, opts.styles, strict=True)]
    return mean, std, {"styles": styles, "style_image": " + ".join(names)}


def _style_pixels(image: Image.Image, style_size: int) -> torch.Tensor:
    """A style image resized to ``style_size`` (long side) and centre-cropped to sides that
    are multiples of 8, as a (1, 3, h, w) 0-255 tensor."""
    image = resize_long_side(image.convert("RGB"), style_size)
    width, height = (max(8, side - side % 8) for side in image.size)
    left, top = (image.width - width) // 2, (image.height - height) // 2
    return images_to_tensor([image.crop((left, top, left + width, top + height))], torch.device("cpu"))


def style_mix(spec: str, names: list[str], count: int, given: bool = False) -> list[float]:
    """Parse ``--style-weights``: ``"2"``, ``"wave"`` or ``"0:0.5,wave:0.5"`` into K weights
    (of a multi-style model's styles, or with ``given`` of the ``--style`` images given).

    Raises:
        StyleforgeError: an unknown name, an index out of range, or a malformed weight.
    """
    weights = [0.0] * count
    for item in (part.strip() for part in spec.split(",")):
        key, _, value = item.partition(":")
        key = key.strip()
        if key.isdigit():
            index = int(key)
            if index >= count:
                owner = f"{count} --style image(s) were given" if given else f"this model has {count} style(s)"
                raise StyleforgeError(f"style {index} is out of range: {owner}, 0-{count - 1}")
        elif key in names:
            index = names.index(key)
        else:
            where = "among the --style images:" if given else "in this model; its styles are"
            raise StyleforgeError(f"no style {key!r} {where} {', '.join(f'{i}:{n}' for i, n in enumerate(names))}")
        try:
            weights[index] += float(value) if value else 1.0
        except ValueError:
            raise StyleforgeError(f"style weight {value!r} in {spec!r} is not a number") from None
    if not all(is_finite(w) and w >= 0 for w in weights) or not sum(weights) > 0:
        raise StyleforgeError(f"style weights {spec!r} must be numbers >= 0 with a positive sum")
    return weights


def _onnx_style_model(info: ModelInfo, opts: TransferOptions) -> StyleModel:
    """A StyleModel running an exported ``.onnx`` file (ONNX Runtime or OpenVINO, no
    compile); an ONNX Model Zoo file runs as-is at its fixed 224x224."""
    file = info.path
    net, metadata = load_network(file, opts.device, opts.runtime)
    if info.kind == STYLE_VECTOR:
        net, styles = style_vector_stylizer(file, net, metadata, opts)
    elif info.kind == ADAIN:
        mean, std, styles = adain_style(file, opts, net.statistics)
        net.set_style(mean.numpy(), std.numpy(), opts.alpha)
    else:
        if opts.style_weights is not None:
            net.select_styles(style_mix(opts.style_weights, info.style_names, info.styles))
        styles = {"style_image": metadata.get("style_image")}
    metadata = {"runtime": net.device_description, **metadata, **styles}
    return StyleModel(net, metadata, torch.device("cpu"), dataclasses.replace(opts, precision="fp32"))


def stylize_tiled(net: StyleNetwork, x: torch.Tensor, tile: int, overlap: int, stats_pixels: int, context: int = 64) -> torch.Tensor:
    """Stylise a (1, 3, H, W) image in overlapping tiles; returns (1, 3, H, W) on the CPU.

    Args:
        net: the transform network (eval mode), PyTorch or exported.
        x: the image, 0-255.
        tile: tile side in pixels.
        overlap: pixels shared by neighbouring tiles (blended linearly); < tile / 2.
        stats_pixels: instance-norm statistics come from the whole image downscaled to
            at most this many pixels.
        context: real image pixels added around each tile (where the image has them)
            and cropped after the network, so the blended pixels are not computed
            next to the network's mirrored padding.
    """
    if overlap * 2 >= tile:
        raise StyleforgeError(f"tile overlap {overlap} must be less than half the tile size {tile}")
    _, _, height, width = x.shape
    try:
        _record_norm_statistics(net, x, stats_pixels)
        out = torch.zeros(1, 3, height, width, dtype=torch.float32)
        weight = torch.zeros(1, 1, height, width, dtype=torch.float32)
        for top in _tile_starts(height, tile, overlap):
            for left in _tile_starts(width, tile, overlap):
                th, tw = min(tile, height), min(tile, width)
                y = _with_context(net, x, top, left, th, tw, context)
                ramp = _ramp(top, th, height, overlap)[:, None] * _ramp(left, tw, width, overlap)[None, :]
                out[:, :, top : top + th, left : left + tw] += y * ramp
                weight[:, :, top : top + th, left : left + tw] += ramp
        return out / weight
    finally:
        net.clear_norm_statistics()


def _with_context(net: StyleNetwork, x: torch.Tensor, top: int, left: int, th: int, tw: int, context: int) -> torch.Tensor:
    height, width = x.shape[2:]
    # The crop starts on the whole image's 4-pixel grid: the network downsamples twice by
    # 2 and upsamples back, so it is shift-equivariant only for shifts that are multiples
    # of 4; a crop off that grid computes a differently aliased image. (AdaIN's encoder
    # pools three times: its grid is 8, the network's ``alignment``.)
    grid = getattr(net, "alignment", 4)
    y0, y1 = max(0, top - context) // grid * grid, min(height, top + th + context)
    x0, x1 = max(0, left - context) // grid * grid, min(width, left + tw + context)
    y = net(x[:, :, y0:y1, x0:x1])
    return y[:, :, top - y0 : top - y0 + th, left - x0 : left - x0 + tw].float().cpu()


def _record_norm_statistics(net: StyleNetwork, x: torch.Tensor, stats_pixels: int) -> None:
    height, width = x.shape[2:]
    scale = min(1.0, (stats_pixels / (height * width)) ** 0.5)
    small = x if scale == 1.0 else F.interpolate(x, scale_factor=scale, mode="bilinear", antialias=True, align_corners=False)
    net.record_norm_statistics(small)


def _tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, size - tile, step))
    return starts + [size - tile]


def _ramp(start: int, length: int, total: int, overlap: int) -> torch.Tensor:
    """Blend weights along one axis: rising over the overlap with a previous tile, falling
    over the overlap with the next one; flat 1 at the image borders."""
    ramp = torch.ones(length)
    fade = torch.arange(1, overlap + 1, dtype=torch.float32) / (overlap + 1)
    if start > 0:
        ramp[:overlap] = torch.minimum(ramp[:overlap], fade)
    if start + length < total:
        ramp[length - overlap :] = torch.minimum(ramp[length - overlap :], fade.flip(0))
    return ramp


def images_to_tensor(images: list[Image.Image], device: torch.device) -> torch.Tensor:
    """uint8 HWC images -> float NCHW on ``device`` (channels_last strides, from the permute)."""
    arrays = np.stack([np.asarray(img, dtype=np.uint8) for img in images])
    return torch.from_numpy(arrays).to(device).permute(0, 3, 1, 2).float()


def tensor_to_images(y: torch.Tensor) -> list[Image.Image]:
    """(N, 3, H, W) 0-255 float tensor -> N RGB images (clamped and rounded)."""
    arrays = y.float().clamp(0, 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(a, mode="RGB") for a in arrays]


def _resized(img: Image.Image, size: int | None) -> Image.Image:
    if size is None:
        return img
    return resize_long_side(img, size)


# ----------------------------------------------------------------------------- files


@dataclass
class TransferResult:
    """What :func:`transfer_files` did: written items with seconds per image, skipped files,
    and where and in which precision (``auto`` resolved) the network ran."""

    written: list[tuple[TransferItem, float]]
    skipped: list[tuple[Path, str]]
    device: str
    precision: str


def transfer_files(model: StyleModel, items: list[TransferItem], report: Callable[[TransferItem, float], None] | None = None) -> TransferResult:
    """Stylise every item, batching consecutive same-size images (``options.batch_size``).

    Unreadable files found inside folders are skipped and listed; the timing of a batch
    is shared equally by its images.
    """
    written: list[tuple[TransferItem, float]] = []
    skipped: list[tuple[Path, str]] = []
    pending: list[tuple[TransferItem, Image.Image]] = []

    def flush() -> None:
        if not pending:
            return
        start = time.perf_counter()
        images = [img for _, img in pending]
        tiled = any(img.size[0] * img.size[1] > model.options.auto_tile_pixels for img in images) or model.options.tile
        outputs = [model.stylize(img) for img in images] if tiled or len(images) == 1 else model.stylize_batch(images)
        synchronize(model.device)
        seconds = (time.perf_counter() - start) / len(images)
        for (item, _), result in zip(pending, outputs, strict=True):
            write_image(result, item.target)
            written.append((item, seconds))
            if report:
                report(item, seconds)
        pending.clear()

    for item in items:
        try:
            image = _resized(read_image(item.source), model.options.size)
        except StyleforgeError as exc:
            skipped.append((item.source, str(exc)))
            continue
        if pending and (image.size != pending[0][1].size or len(pending) >= model.options.batch_size):
            flush()
        pending.append((item, image))
    flush()
    return TransferResult(written, skipped, model.device_description, model.options.precision)
