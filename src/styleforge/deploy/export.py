"""Exporting the transform network and the VGG19 classifier to ONNX, verified.

Both go through ``torch.onnx.export(..., dynamo=True)`` into one self-contained file
(no external-data sidecar), with named inputs and outputs and styleforge's metadata in
the file (``styleforge_format``, preprocessing convention, class names, style image,
training options, source checksum, styleforge version).

* Style models: input ``image`` (N, 3, H, W) RGB 0-255, output ``stylized``, with
  dynamic batch, height and width. The network is traced in
  :func:`~styleforge.nets.transform_net.export_mode`, which avoids two traps of tracing the
  eager network: the single-image batch-norm shortcut of instance norm (traced, it
  fixes the batch to 1, tested) and any branch on the example's shape (the
  pad-to-a-multiple-of-4 step is unconditional there, so odd sizes cannot be traced
  away).
* The classifier: input ``image`` (N, 3, S, S) already in the weights' convention
  (the runtime applies it, as the course's graph takes a mean-subtracted image),
  outputs ``logits`` and ``probabilities`` (the course's graph ends in Softmax), dynamic
  batch, fixed S (224 by default): VGG19's adaptive average pool before fc6 is an
  identity at S = 224 and the exporter would trace it as one, so other sizes would be
  wrong rather than refused.

Every export checks itself: ONNX Runtime against PyTorch on a real photo, on odd sizes
and on a batch of different images; the largest difference is reported and above the
tolerance the command fails and no file is written.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from styleforge import __version__
from styleforge.deploy.export_plan import onnx_target
from styleforge.errors import StyleforgeError
from styleforge.nets.onnx import OnnxAdaINNet, OnnxTransformNet
from styleforge.runtime.exports import ADAIN_FORMAT, ADAIN_INPUTS, ADAIN_OUTPUTS, CLASSIFIER_FORMAT, STYLE_FORMAT
from styleforge.utils.fs import write_bytes_atomic
from styleforge.vgg.onnx_classifier import OnnxClassifier

#: Largest accepted difference between ONNX Runtime and PyTorch: grey levels (0-255) of
#: stylised images, and probabilities of the classifier (float32 summation order).
STYLE_TOLERANCE = 0.05
CLASSIFIER_TOLERANCE = 1e-4

#: Sizes (height, width) and batch sizes the style export is checked on, besides the photo.
STYLE_CHECKS = (((37, 53), 2), ((64, 48), 1), ((5, 7), 1))


@dataclass
class ExportReport:
    """What :func:`export_style_model` / :func:`export_classifier` wrote and measured."""

    path: Path
    kind: str
    checks: list[tuple[str, float]]  # (what was compared, max abs difference)
    tolerance: float
    size_bytes: int

    @property
    def max_difference(self) -> float:
        """The largest difference over all checks."""
        return max(diff for _, diff in self.checks)


def verification_photo() -> Image.Image:
    """The small real photo (a tabby cat, CC0) every export is checked on."""
    with resources.files("styleforge.data").joinpath("verify.jpg").open("rb") as handle:
        return Image.open(handle).convert("RGB")


def export_style_model(model_path: str | os.PathLike[str], output: str | os.PathLike[str],
                       power_difference: bool = False, style_weights: str | None = None) -> ExportReport:
    """Export a trained style model (safetensors or checkpoint) to a verified ONNX file.

    With ``power_difference``, each instance norm is exported written out (mean, the
    variance through one ``styleforge.PowerDifference`` node, normalisation): 15 custom
    nodes for the default network (:mod:`~styleforge.runtime.custom_ops`). A multi-style
    model is exported with a second input, ``style_weights`` (K,), >= 0 with a positive
    sum (normalised in the graph), so the file keeps every style and blend; or, with
    ``style_weights`` given as ``transfer --style-weights`` takes it, in that one style
    or blend, recorded in the metadata.

    Returns:
        An :class:`ExportReport`; raises StyleforgeError (writing nothing) when the
        exported graph disagrees with PyTorch beyond :data:`STYLE_TOLERANCE`.
    """
    from styleforge.models.blends import style_mix
    from styleforge.models.loading import ADAIN, STYLE_VECTOR, inspect_model, load_network
    from styleforge.models.store import resolve_model_file
    from styleforge.nets.transform_net import export_mode, use_power_difference

    model_path = resolve_model_file(model_path)
    target = onnx_target(output, [model_path])
    info = inspect_model(model_path)
    if info.runtime == "onnx":
        raise StyleforgeError(f"'{model_path}' is already an ONNX file; export takes the .safetensors model or a checkpoint")
    if info.kind == ADAIN:
        if power_difference or style_weights:
            raise StyleforgeError("--power-difference and --style-weights do not apply to an AdaIN model: its graph takes "
                                  "any style's statistics as inputs")
        return export_adain_model(model_path, target)
    if info.kind == STYLE_VECTOR:
        if style_weights:
            raise StyleforgeError("--style-weights does not apply to a style-vector model: its graph takes any painting's "
                                  "style vector as an input")
        return export_style_vector_model(model_path, target, power_difference)
    net, model_metadata = load_network(info)
    if style_weights is not None:
        net.select_styles(style_mix(style_weights, info.style_names, info.styles))
    net = net.float().eval().requires_grad_(False)
    use_power_difference(net, power_difference)
    # A batch of 2: an example dimension of size 1 is specialised to 1 by torch.export
    # when a custom operator (PowerDifference) takes it, whatever Dim says.
    example = torch.rand(2, 3, 64, 48, generator=torch.Generator().manual_seed(0)) * 255
    batch, height, width = (torch.export.Dim(name, min=low, max=16384) for name, low in (("batch", 1), ("height", 5), ("width", 5)))
    image_dims = {0: batch, 2: height, 3: width}
    selectable = net.styles > 1 and style_weights is None
    with export_mode(net):
        if selectable:
            mix = torch.linspace(1.0, 2.0, net.styles)  # every style weighs in the traced example
            data = _export(StyleWeightsGraph(net), (example, mix), ["stylized"], {"image": image_dims, "condition": None},
                           custom_ops=power_difference, input_names=["image", "style_weights"])
        else:
            data = _export(net, example, ["stylized"], {"x": image_dims}, custom_ops=power_difference)
    metadata = {
        "styleforge_format": STYLE_FORMAT,
        **net.convention(),
        "style_image": str(model_metadata.get("style_image", "")),
        "training_options": json.dumps(model_metadata.get("options", {}), default=str),
        "source_file": Path(model_path).name,
        "source_sha256": _sha256(Path(model_path)),
        "power_difference": str(power_difference).lower(),
        **({"style_weights": style_weights} if style_weights else {}),
        **({"styles": json.dumps(info.style_names)} if selectable else {}),
    }
    data = _with_metadata(data, metadata)
    checks = _verify_style(net, data)
    return _write_verified(target, data, "style model", checks, STYLE_TOLERANCE)


class StyleWeightsGraph(torch.nn.Module):
    """A multi-style network whose style weights are an input: ``(image, style_weights)``,
    the weights (K,) normalised to sum 1 and given to every conditional instance norm."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        from styleforge.nets.transform_net import InstanceNorm

        self.net = net
        self.mix_names = [f"{name}.mix" for name, m in net.named_modules() if isinstance(m, InstanceNorm) and m.styles > 1]

    def mix(self, condition: torch.Tensor) -> torch.Tensor:
        """The norms' mixing weights for the graph's second input."""
        return condition / condition.sum()

    def forward(self, image: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(self.net, dict.fromkeys(self.mix_names, self.mix(condition)), (image,))


class StyleVectorGraph(StyleWeightsGraph):
    """A style-vector network whose vector (D,) is an input: ``(image, style_vector)``,
    given to every norm as the mix ``[v, 1]`` (see :class:`~styleforge.nets.transform_net.InstanceNorm`)."""

    def mix(self, condition: torch.Tensor) -> torch.Tensor:
        return torch.cat([condition.flatten(), condition.new_ones(1)])


def export_style_vector_model(model_path: Path, target: Path, power_difference: bool = False) -> ExportReport:
    """Export a style-vector model to a verified ONNX file with a second input,
    ``style_vector`` (D,), and copy its style predictor beside it
    (``<target stem>.predict.onnx``, named in the metadata), so that ``transfer --model
    FILE.onnx --style PAINTING`` works from the two files alone."""
    from styleforge.models.formats.magenta import load_style_predictor, predictor_name_for, write_predictor_beside
    from styleforge.models.loading import load_network
    from styleforge.nets.transform_net import export_mode, use_power_difference

    net, metadata_in = load_network(model_path)
    predictor = load_style_predictor(model_path, metadata_in)
    net = net.float().eval().requires_grad_(False)
    use_power_difference(net, power_difference)
    generator = torch.Generator().manual_seed(0)
    example = (torch.rand(2, 3, 64, 48, generator=generator) * 255, torch.randn(net.style_vector, generator=generator))
    batch, height, width = (torch.export.Dim(name, min=low, max=16384) for name, low in (("batch", 1), ("height", 5), ("width", 5)))
    with export_mode(net):
        data = _export(StyleVectorGraph(net), example, ["stylized"], {"image": {0: batch, 2: height, 3: width}, "condition": None},
                       custom_ops=power_difference, input_names=["image", "style_vector"])
    predictor_name = predictor_name_for(target)
    metadata = {
        "styleforge_format": STYLE_FORMAT, **net.convention(), "style_image": "",
        "source_file": model_path.name, "source_sha256": _sha256(model_path),
        "power_difference": str(power_difference).lower(),
        "style_predictor": predictor_name, "style_predictor_sha256": _sha256(Path(predictor.file)),
    }
    data = _with_metadata(data, metadata)
    checks = _verify_style(net, data, style_vector=example[1])
    report = _write_verified(target, data, "style model", checks, STYLE_TOLERANCE)
    write_predictor_beside(predictor.file, target)
    return report


class _AdaINGraph(torch.nn.Module):
    """The exported AdaIN computation (inputs and outputs: :class:`OnnxAdaINNet`)."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor, alpha: torch.Tensor,
                content_mean: torch.Tensor, content_std: torch.Tensor, freeze: torch.Tensor) -> tuple[torch.Tensor, ...]:
        from styleforge.nets.adain import align, channel_statistics

        features = self.net.encode(image)["relu4_1"]
        own_mean, own_std = channel_statistics(features)
        used = (freeze * content_mean + (1 - freeze) * own_mean, freeze * content_std + (1 - freeze) * own_std)
        target = alpha * align(features, style_mean, style_std, used) + (1 - alpha) * features
        return self.net.decode(target).clamp(0.0, 255.0), own_mean, own_std


def export_adain_model(model_path: str | os.PathLike[str], target: Path) -> ExportReport:
    """Export an AdaIN model (safetensors or checkpoint) to one verified ONNX file that takes
    the style's statistics as inputs (:class:`~styleforge.nets.onnx.OnnxAdaINNet`)."""
    from styleforge.models.loading import load_network
    from styleforge.nets.adain import AdaINNet

    path = Path(model_path)
    net, metadata_in = load_network(path)
    assert isinstance(net, AdaINNet)
    net = net.float().eval().requires_grad_(False)
    channels = net.decoder.widths[3]
    generator = torch.Generator().manual_seed(0)
    stats = (torch.rand(1, channels, 1, 1, generator=generator), torch.rand(1, channels, 1, 1, generator=generator) + 0.5)
    # Distinct tensors for every input: the exporter would merge two inputs given the same one.
    examples = (torch.rand(2, 3, 64, 48, generator=generator) * 255, *stats, torch.full((1, 1, 1, 1), 0.5),
                *(t.clone() for t in stats), torch.zeros(1, 1, 1, 1))
    batch, height, width = torch.export.Dim("batch", min=1, max=4096), torch.export.Dim("h8", min=2, max=2048), torch.export.Dim("w8", min=2, max=2048)
    dynamic = {name: None for name in ADAIN_INPUTS} | {"image": {0: batch, 2: 8 * height, 3: 8 * width}}
    data = _export(_AdaINGraph(net).eval(), examples, list(ADAIN_OUTPUTS), dynamic, input_names=list(ADAIN_INPUTS))
    metadata = {
        "styleforge_format": ADAIN_FORMAT,
        "channels": str(channels),
        "convention": net.encoder.convention.to_json(),
        "training_options": json.dumps(metadata_in.get("options", {}), default=str),
        "source_file": path.name,
        "source_sha256": _sha256(path),
    }
    data = _with_metadata(data, metadata)
    checks = _verify_adain(net, data)
    return _write_verified(target, data, "AdaIN model", checks, STYLE_TOLERANCE)


def _verify_adain(net: torch.nn.Module, data: bytes) -> list[tuple[str, float]]:
    """ONNX Runtime vs the PyTorch stylizer: the style statistics of a painting-sized image,
    the photo at alpha 0.7, odd sizes, a batch, and tiles' frozen content statistics."""
    from styleforge.images.tensors import images_to_tensor
    from styleforge.nets.adain import AdaINStylizer

    onnx_net = _session_from_bytes(data, OnnxAdaINNet)
    photo = images_to_tensor([verification_photo()], torch.device("cpu"))
    painting = photo.flip(3)[:, :, 8:, :].contiguous()
    checks = []
    with torch.inference_mode():
        mean, std = net.style_statistics(painting[:, :, : painting.shape[2] // 8 * 8, : painting.shape[3] // 8 * 8])
        got_mean, got_std = onnx_net.statistics(painting[:, :, : painting.shape[2] // 8 * 8, : painting.shape[3] // 8 * 8])
        checks.append(("style statistics", float(max(np.abs(got_mean - mean.numpy()).max(), np.abs(got_std - std.numpy()).max()))))
        stylizer = AdaINStylizer(net, mean, std, alpha=0.7).eval()
        onnx_net.set_style(mean.numpy(), std.numpy(), 0.7)
        generator = torch.Generator().manual_seed(1)
        cases = [("photo " + "x".join(map(str, verification_photo().size)), photo)]
        cases += [(f"batch {count} of {w}x{h}", torch.rand(count, 3, h, w, generator=generator) * 255)
                  for (h, w), count in STYLE_CHECKS]
        for name, x in cases:
            expected = torch.cat([stylizer(x[i : i + 1]) for i in range(x.shape[0])])
            checks.append((name, float((onnx_net(x) - expected).abs().max())))
        stylizer.record_norm_statistics(photo)
        onnx_net.record_norm_statistics(photo)
        tile = photo[:, :, :64, :80]
        checks.append(("a tile with the photo's statistics", float((onnx_net(tile) - stylizer(tile)).abs().max())))
    return checks


def export_classifier(weights: str, output: str | os.PathLike[str], size: int = 224) -> ExportReport:
    """Export the VGG19 classifier of ``weights`` to a verified ONNX file taking
    ``size`` x ``size`` inputs in the weights' convention."""
    from styleforge.vgg.network import load_vgg19
    from styleforge.vgg.weights.store import load_bundle

    target = onnx_target(output)
    bundle = load_bundle(weights)
    vgg = load_vgg19(weights, device="cpu")
    if not vgg.has_classifier:
        raise StyleforgeError(f"weights {weights!r} have no classifier (fc6-fc8) to export")
    grid = vgg.pool_grid
    if size % 32 or size // 32 != grid:
        raise StyleforgeError(f"--size {size}: these weights' classifier takes {32 * grid}x{32 * grid} inputs (pool5 of {grid}x{grid})")
    head = _ClassifierHead(vgg).eval()
    example = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    data = _export(head, example, ["logits", "probabilities"], {"x": {0: torch.export.Dim("batch", min=1, max=4096)}})
    metadata = {
        "styleforge_format": CLASSIFIER_FORMAT,
        "convention": vgg.convention.to_json(),
        "class_names": json.dumps(vgg.class_names),
        "num_classes": str(len(vgg.class_names)),
        "input_size": str(size),
        "source": bundle.source,
        "source_sha256": bundle.extra.get("source_sha256", ""),
    }
    data = _with_metadata(data, metadata)
    checks = _verify_classifier(head, vgg, data, size)
    return _write_verified(target, data, "classifier", checks, CLASSIFIER_TOLERANCE)


class _ClassifierHead(torch.nn.Module):
    """VGG19 with both heads the course's graph has: fc8 logits and their softmax."""

    def __init__(self, vgg: torch.nn.Module) -> None:
        super().__init__()
        self.vgg = vgg

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.vgg(x)
        return logits, torch.softmax(logits, dim=1)


def _export(module: torch.nn.Module, example: torch.Tensor | tuple[torch.Tensor, ...], outputs: list[str], dynamic: dict,
            custom_ops: bool = False, input_names: list[str] | None = None) -> bytes:
    """``torch.onnx.export`` (dynamo) into memory; its progress chatter is silenced.
    ``example``: one input (named ``image``) or a tuple of them (named ``input_names``).
    ``custom_ops``: write styleforge's operators as their own nodes."""
    from styleforge.runtime.custom_ops import register_schema, translation_table

    _require_onnx()
    table = translation_table() if custom_ops else None
    if custom_ops:
        register_schema()
    buffer = io.BytesIO()
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            warnings.simplefilter("ignore")
            examples = example if isinstance(example, tuple) else (example,)
            program = torch.onnx.export(module, examples, dynamo=True, input_names=input_names or ["image"], output_names=outputs,
                                        dynamic_shapes=dynamic, external_data=False, optimize=True, verbose=False,
                                        custom_translation_table=table)
            program.save(buffer)
    finally:
        quiet.setLevel(level)
    return buffer.getvalue()


def _with_metadata(data: bytes, metadata: dict[str, str]) -> bytes:
    import onnx

    model = onnx.load_from_string(data)
    entries = {**metadata, "styleforge_version": __version__}
    del model.metadata_props[:]
    for key, value in entries.items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name = "styleforge"
    from styleforge.runtime.custom_ops import register_schema, uses_custom_domain

    if uses_custom_domain(model):
        register_schema()
    onnx.checker.check_model(model, check_custom_domain=True)
    return model.SerializeToString()


def _verify_style(net: torch.nn.Module, data: bytes, style_vector: torch.Tensor | None = None) -> list[tuple[str, float]]:
    """ONNX Runtime vs PyTorch eager (each image alone, the reference) on the photo,
    odd sizes and batches of different images (a style-vector network: both given
    ``style_vector``, then another one); returns (check, max abs difference)."""
    from styleforge.images.tensors import images_to_tensor

    onnx_net = _session_from_bytes(data, OnnxTransformNet)
    if style_vector is not None:
        onnx_net.set_style_vector(style_vector)
        net.set_style_vector(style_vector)
    cases = [("photo " + "x".join(map(str, verification_photo().size)), images_to_tensor([verification_photo()], torch.device("cpu")))]
    generator = torch.Generator().manual_seed(1)
    for (height, width), count in STYLE_CHECKS:
        cases.append((f"batch {count} of {width}x{height}", torch.rand(count, 3, height, width, generator=generator) * 255))
    checks = []
    with torch.inference_mode():
        for name, x in cases:
            expected = torch.cat([net(x[i : i + 1]) for i in range(x.shape[0])])
            checks.append((name, float((onnx_net(x) - expected).abs().max())))
        if onnx_net.style_vector:  # another vector through the graph's style_vector input
            vector = torch.randn(onnx_net.style_vector, generator=generator)
            onnx_net.set_style_vector(vector)
            net.set_style_vector(vector)
            x = cases[0][1]
            checks.append(("the photo with another style vector", float((onnx_net(x) - net(x)).abs().max())))
        if onnx_net.styles > 1:  # a blend of every style through the graph's style_weights input
            blend = list(range(1, onnx_net.styles + 1))
            onnx_net.select_styles(blend)
            net.select_styles(blend)
            try:
                x = cases[0][1]
                checks.append((f"the photo in the blend {blend}", float((onnx_net(x) - net(x)).abs().max())))
            finally:
                net.select_styles(None)
    return checks


def _verify_classifier(head: torch.nn.Module, vgg: Any, data: bytes, size: int) -> list[tuple[str, float]]:
    classifier = _session_from_bytes(data, OnnxClassifier)
    photo = classifier.preprocess([verification_photo()], size)
    generator = torch.Generator().manual_seed(2)
    batch = torch.randn(3, 3, size, size, generator=generator).numpy()
    checks = []
    with torch.inference_mode():
        for name, x in (("photo", photo), ("batch of 3", batch)):
            expected = head(torch.from_numpy(x))[1].numpy()
            checks.append((f"{name}: probabilities", float(np.abs(classifier.probabilities(x) - expected).max())))
    return checks


def _session_from_bytes(data: bytes, kind: type) -> Any:
    """Open the exported bytes with the runtime class used for real, on ONNX Runtime's CPU provider."""
    return kind(data, device="cpu", runtime="onnxruntime")


def _write_verified(target: Path, data: bytes, what: str, checks: list[tuple[str, float]], tolerance: float) -> ExportReport:
    worst = max(checks, key=lambda item: item[1])
    if not worst[1] <= tolerance:  # also refuses NaN
        raise StyleforgeError(f"the exported {what} disagrees with PyTorch ({worst[0]}: max difference {worst[1]:.3g} > "
                              f"{tolerance:g}); nothing was written")
    write_bytes_atomic(target, data)
    return ExportReport(target, what, checks, tolerance, len(data))


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise StyleforgeError("exporting needs onnx and onnxscript: pip install 'styleforge[onnx]'") from None
