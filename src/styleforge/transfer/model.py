"""A loaded style model and what ``transfer`` does with it: stylise one image, a batch of
same-size images, or a list of files.

:func:`load_style_model` reads the file through :mod:`styleforge.models.loading` (the
files themselves are described there and in :mod:`styleforge.models.files`), refuses the
options that do not apply to it (:mod:`styleforge.models.option_rules`), and wraps the
network with the styles asked for (:mod:`styleforge.transfer.styles`). Images above
``--tile`` or the pixel budget go through :mod:`styleforge.transfer.tiles`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from styleforge.config import RuntimePolicy, TransferOptions
from styleforge.devices import autocast, describe_device, resolve_device, resolve_precision, synchronize
from styleforge.errors import StyleforgeError
from styleforge.images.color import match_color_histogram, restore_chroma
from styleforge.images.io import read_image, resize_long_side, write_image
from styleforge.images.tensors import images_to_tensor, tensor_to_images
from styleforge.models.blends import style_mix
from styleforge.models.loading import ADAIN, STYLE_VECTOR, ModelInfo, StyleNetwork, load_network
from styleforge.models.option_rules import checked_model_info
from styleforge.models.store import resolve_model_file
from styleforge.nets.adain import AdaINNet, AdaINStylizer
from styleforge.nets.transform_net import TransformNet, use_power_difference, weaken_instance_norms
from styleforge.transfer.plan import TransferItem, validate_transfer_options
from styleforge.transfer.runtimes import RuntimeChoice, megapixels, start_runtime
from styleforge.transfer.styles import adain_style, style_vector_stylizer
from styleforge.transfer.tiles import stylize_tiled


@dataclass
class StyleModel:
    """A loaded style network. ``stylize(image)`` takes and returns PIL images of any size.

    ``net`` is any :class:`~styleforge.models.loading.StyleNetwork`: the PyTorch
    transform network, an AdaIN or style-vector stylizer around one, or an exported
    ``.onnx`` network called the same way. ``source``: the model file (for the background
    conversion of :mod:`~styleforge.transfer.runtimes`).

    Whole images run in PyTorch until :meth:`prepare` chooses the runtime for a job
    (``transfer`` calls it with the job's size); tiles always run in ``net``.
    """

    net: StyleNetwork
    metadata: dict
    device: torch.device
    options: TransferOptions
    source: Path | None = None
    runtime_choice: RuntimeChoice | None = field(default=None, init=False)
    runtime_description: str | None = field(default=None, init=False)

    @property
    def device_description(self) -> str:
        """Where the network runs, for reports (the runtime and provider for .onnx models
        and OpenVINO copies)."""
        return self.runtime_description or getattr(self.net, "device_description", None) or describe_device(self.device)

    def prepare(self, work_megapixels: float = math.inf, policy: RuntimePolicy | None = None) -> RuntimeChoice:
        """Choose and set up the runtime of whole images for a job of ``work_megapixels``
        (math.inf: a long-lived service) under ``options.runtime``
        (:func:`~styleforge.transfer.runtimes.start_runtime`); the first call decides,
        later ones return the same choice.

        Raises:
            StyleforgeError: ``--runtime openvino`` where it cannot run.
        """
        if self.runtime_choice is None:
            self.runtime_choice = start_runtime(self, work_megapixels, policy or RuntimePolicy())
        return self.runtime_choice

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
        tile = self.tile_side(*image.size, tile)
        x = images_to_tensor([image], self.device).contiguous(memory_format=self.memory_format)
        with torch.inference_mode(), self.autocast():
            if tile is not None:
                overlap = min(self.options.tile_overlap, tile // 4)  # small tiles get a proportional overlap
                y = stylize_tiled(self.net, x, tile, overlap, self.options.stats_pixels)
            else:
                y = self.forward(x)
        return self.finish(tensor_to_images(y)[0], image)

    def autocast(self) -> object:
        """PyTorch's autocast for ``options.precision`` (none for ``int8``: the INT8 copy runs
        in its own runtime, in its own precisions)."""
        return autocast(self.device, "fp32" if self.options.precision == "int8" else self.options.precision)

    def tile_side(self, width: int, height: int, tile: int | None = None) -> int | None:
        """The side of the tiles an image of ``width`` x ``height`` runs in (``tile``, else
        ``options.tile``, else 1024 above ``options.auto_tile_pixels``), or None when it
        runs whole (in the runtime :meth:`prepare` chose)."""
        tile = tile or self.options.tile
        if tile is None and width * height > self.options.auto_tile_pixels:
            tile = 1024
        return tile if tile is not None and max(width, height) > tile else None

    def stylize_batch(self, images: list[Image.Image]) -> list[Image.Image]:
        """Stylise same-size images: in one forward pass on CUDA, one image per pass on the
        CPU (see :meth:`images_per_pass`); returns the stylised images in order."""
        if len({img.size for img in images}) != 1:
            raise StyleforgeError("stylize_batch needs images of one size")
        photos = [img.convert("RGB") for img in images]
        x = images_to_tensor(photos, self.device).contiguous(memory_format=self.memory_format)
        passes = x.split(self.images_per_pass(len(photos)))
        with torch.inference_mode(), self.autocast():
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
    if opts.precision == "int8":
        return _int8_style_model(info, opts)
    net, metadata = load_network(info)
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
    model = StyleModel(net.eval().requires_grad_(False), metadata, dev, opts, file)
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


def _onnx_style_model(info: ModelInfo, opts: TransferOptions, opened: tuple[StyleNetwork, dict] | None = None) -> StyleModel:
    """A StyleModel running an exported ``.onnx`` file (ONNX Runtime or OpenVINO, no
    compile); an ONNX Model Zoo file runs as-is at its fixed 224x224. ``opened``: the
    file's network and metadata when the caller opened it (else
    :func:`~styleforge.models.loading.load_network` opens it)."""
    file = info.path
    net, metadata = opened or load_network(info, opts.device, opts.runtime)
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
    model = StyleModel(net, metadata, torch.device("cpu"), dataclasses.replace(opts, precision="fp32"), file)
    runtime = "openvino" if "openvino" in net.device_description else "onnxruntime"
    model.runtime_choice = RuntimeChoice(runtime, "an exported .onnx file" if opts.runtime == "auto" else f"--runtime {runtime}")
    return model


def _int8_style_model(info: ModelInfo, opts: TransferOptions) -> StyleModel:
    """A StyleModel running the INT8 copy of the PyTorch model ``info`` describes
    (:mod:`~styleforge.transfer.int8`: quantised once and cached), its runtime line naming
    the copy's PSNR against fp32."""
    from styleforge.transfer.int8 import describe, int8_model_info, measured_psnr, open_copy

    int8_info, copy, seconds = int8_model_info(info, opts)
    opened = open_copy(copy, opts)
    model = _onnx_style_model(int8_info, dataclasses.replace(opts, style_weights=None), opened)  # the blend is baked in
    psnr_db = measured_psnr(copy, info, opts, model.net, model.runtime_choice.runtime)
    model.runtime_choice = dataclasses.replace(model.runtime_choice, reason=describe(psnr_db, seconds))
    model.options = dataclasses.replace(model.options, precision="int8")
    model.metadata["int8_psnr_db"] = psnr_db
    return model


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


def planned_megapixels(model: StyleModel, items: list[TransferItem]) -> float:
    """The megapixels of the items' images that will run whole (not tiled) at the model's
    ``--size``, from their headers (unreadable ones count nothing): the job size
    :meth:`StyleModel.prepare` weighs."""
    sizes = []
    for item in items:
        try:
            with Image.open(item.source) as image:
                size = image.size
        except (OSError, ValueError, Image.DecompressionBombError):
            continue
        if model.options.size is not None:
            scale = model.options.size / max(size)
            size = (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
        if model.tile_side(*size) is None:
            sizes.append(size)
    return megapixels(sizes)


def transfer_files(model: StyleModel, items: list[TransferItem], report: Callable[[TransferItem, float], None] | None = None) -> TransferResult:
    """Stylise every item, batching consecutive same-size images (``options.batch_size``),
    in the runtime :meth:`StyleModel.prepare` chooses for the job (unless chosen before).

    Unreadable files found inside folders are skipped and listed; the timing of a batch
    is shared equally by its images.
    """
    model.prepare(planned_megapixels(model, items))
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
