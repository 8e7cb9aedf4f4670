"""Post-training static quantisation of exported models with ONNX Runtime's toolkit.

The course's config (:mod:`~styleforge.deploy.quantize_config`) maps onto
``onnxruntime.quantization.quantize_static`` in QDQ format:

* ``quantization_type``: ``int8`` = unsigned 8-bit activations and signed 8-bit weights
  (the x86 VNNI combination), ``int16`` = signed 16-bit both;
* ``activation_quantization_alg``: ``naive`` = min/max of the calibration activations;
  ``threshold_search`` = the ``threshold_percentile`` percentile of their magnitudes
  (outliers clipped), so the two differ whenever the data has outliers;
* ``weight_quantization_alg``: ``naive`` = min/max of the weights (the course advises
  against threshold search for weights; it is refused with that reason);
* ``int_op_list``: ``Conv`` -> Conv, ``FC`` -> Gemm and MatMul, ``LRN`` -> LRN (VGG19
  and the transform network have none); ``channel_quantization`` -> per-channel weights;
* ``device_mode``: ``clean`` and ``origin`` both let the runtime pick providers when
  the file is run (ONNX files carry no device placement); ``mlu`` is refused (no MLU);
* ``use_convfirst``: ``(x - mean) / std`` is folded into the first convolution
  (:mod:`~styleforge.deploy.convfirst`); the file then takes raw 0-255 pixels, which
  its metadata records and the runtime honours;
* ``debug``: the calibration ranges are written beside the output as JSON;
* ``float_first_last`` (styleforge's, default True): the first and the last quantisable
  layer stay float;
* ``range_margin`` (styleforge's): the calibrated ranges are widened by this factor
  (default 1 for int8, 2 for int16) through ONNX Runtime's calibration cache: a first
  pass writes the ranges, they are widened, a second pass quantises with them.

The float model's styleforge metadata is kept, plus the settings used, so ``transfer``
and ``classify`` run the quantised file like the float one.

An AdaIN graph takes the style's statistics besides the image: each calibration batch is
stylised toward the statistics of the next batch's first image, taken with the float
graph, so the decoder is calibrated on AdaIN outputs as ``transfer`` produces them.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from styleforge.config import QuantizeOptions
from styleforge.deploy.calibration import calibration_batches
from styleforge.deploy.convfirst import RAW_PIXELS, fold_input_normalization
from styleforge.errors import StyleforgeError
from styleforge.runtime.custom_ops import uses_custom_domain
from styleforge.runtime.exports import (
    ADAIN_FORMAT,
    ADAIN_INPUTS,
    CLASSIFIER_FORMAT,
    STYLE_FORMAT,
    STYLE_VECTOR,
    STYLE_WEIGHTS,
)
from styleforge.runtime.sessions import require_onnxruntime
from styleforge.utils.fs import check_output_file, check_regular_file, write_bytes_atomic
from styleforge.vgg.preprocessing import Convention

OP_TYPES = {"Conv": ("Conv",), "FC": ("Gemm", "MatMul"), "LRN": ("LRN",)}


@dataclass
class QuantizeReport:
    """What :func:`quantize_model` wrote: the file, the quantised node count, the images used."""

    path: Path
    quantized_nodes: int
    calibration_images: int
    ranges_path: Path | None


def quantize_model(opts: QuantizeOptions) -> QuantizeReport:
    """Quantise ``opts.original_models_path`` into ``opts.save_model_path`` (see module docstring)."""
    import onnx

    require_onnxruntime()
    source = check_regular_file(opts.original_models_path, "[model] original_models_path")
    target = check_output_file(opts.save_model_path, "[model] save_model_path", [source])
    _refuse_unsupported(opts)
    model = onnx.load(str(source))
    metadata = {p.key: p.value for p in model.metadata_props}
    _check_names(model, opts)
    _check_preprocessing(metadata, opts)
    settings = {k: v for k, v in asdict(opts).items() if k not in ("original_models_path", "save_model_path", "data_path")}
    if opts.use_convfirst:
        model = fold_input_normalization(model, opts.mean, opts.std)
        metadata["input_preprocessing"] = RAW_PIXELS
        opts = replace(opts, mean=(0.0,), std=(1.0,))  # the folded graph is calibrated on raw pixels
    batches = calibration_batches(opts)
    if metadata.get("styleforge_format") == ADAIN_FORMAT:
        feeds = _adain_feeds(model, batches)
    elif int(metadata.get("style_vector", "0") or 0):
        feeds = _style_vector_feeds(source, metadata, opts.input_tensor_names[0], batches)
    else:
        feeds = [{opts.input_tensor_names[0]: batch, **_style_weights_feed(model, i)} for i, batch in enumerate(batches)]
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    int8 = opts.quantization_type == "int8"
    threshold = opts.activation_quantization_alg == "threshold_search"
    op_types = [op for kind in opts.int_op_list for op in OP_TYPES[kind]]
    margin = range_margin(opts)
    settings["range_margin"] = margin  # the value used, not None
    custom = uses_custom_domain(model)
    with tempfile.TemporaryDirectory(prefix="styleforge-quantize-") as folder, _quiet(), _custom_op_calibration(custom):
        prepared, out, ranges = (Path(folder) / name for name in ("prepared.onnx", "quantized.onnx", "ranges.json"))
        onnx.save(model, str(prepared))
        # Shape inference and graph clean-up, as ONNX Runtime advises; its symbolic shape
        # inference knows no custom node, so PowerDifference graphs get ONNX's own only.
        quant_pre_process(str(prepared), str(prepared), skip_optimization=custom, skip_symbolic_shape=custom)
        settings_ort = {
            "quant_format": QuantFormat.QDQ,
            "op_types_to_quantize": op_types,
            "per_channel": opts.channel_quantization,
            "activation_type": QuantType.QUInt8 if int8 else QuantType.QInt16,
            "weight_type": QuantType.QInt8 if int8 else QuantType.QInt16,
            "calibrate_method": CalibrationMethod.Percentile if threshold else CalibrationMethod.MinMax,
            "extra_options": {"CalibPercentile": opts.threshold_percentile} if threshold else {},
            "nodes_to_exclude": edge_nodes(onnx.load(str(prepared)), op_types) if opts.float_first_last else [],
            "calibration_cache_path": str(ranges),
        }
        quantize_static(str(prepared), str(out), _Reader(feeds), **settings_ort)
        if margin != 1.0:
            widen_ranges(ranges, margin)
            quantize_static(str(prepared), str(out), None, **settings_ort)  # the cache is read, not recomputed
        quantized = onnx.load(str(out))
        ranges_text = ranges.read_text() if opts.debug else None
    entries = {**metadata, "quantization": json.dumps(settings)}
    del quantized.metadata_props[:]
    for key, value in entries.items():
        quantized.metadata_props.add(key=key, value=value)
    if "style_predictor" in metadata:  # the predictor travels beside the quantised file too
        from styleforge.models.formats.magenta import write_predictor_beside

        name = write_predictor_beside(source.parent / metadata["style_predictor"], target)
        quantized.metadata_props[[p.key for p in quantized.metadata_props].index("style_predictor")].value = name
    write_bytes_atomic(target, quantized.SerializeToString())
    ranges_path = None
    if ranges_text is not None:
        ranges_path = write_bytes_atomic(target.with_suffix(".ranges.json"), ranges_text.encode())
    count = sum(node.op_type == "QuantizeLinear" for node in quantized.graph.node)
    return QuantizeReport(target, count, sum(len(b) for b in batches), ranges_path)


def quantize_style_export(onnx_path: Path, calibration: Path, target: Path, kind: str = "int8",
                          images: int = 8, side: int = 256) -> QuantizeReport:
    """Quantise an exported style network (``styleforge export``) to ``target`` with the
    settings styleforge's own INT8 paths use (``bench``, ``transfer --precision int8``):
    raw 0-255 pixels, per-channel weight scales, the first and last convolutions in float,
    min/max ranges of up to ``images`` photos of the folder ``calibration``, each resized
    and centre-cropped to ``side`` x ``side``.

    Returns:
        The :class:`QuantizeReport` of the written file.
    """
    opts = QuantizeOptions(mean=(0.0,), std=(1.0,), crop=(side, side), original_models_path=str(onnx_path),
                           save_model_path=str(target), data_path=str(calibration), num_runs=images,
                           quantization_type=kind, channel_quantization=True, output_tensor_names=("stylized",))
    return quantize_model(opts)


@contextlib.contextmanager
def _custom_op_calibration(custom: bool) -> Iterator[None]:
    """Let ONNX Runtime's calibrator run graphs with PowerDifference nodes.

    ``quantize_static`` builds its calibrator itself and opens the calibration session
    with bare ``SessionOptions``, so a subclass cannot be passed in; for the duration of
    one quantisation the method that opens it also registers styleforge's kernel.
    The nodes themselves are never quantised (not in ``op_types_to_quantize``).
    """
    if not custom:
        yield
        return
    import onnxruntime
    from onnxruntime.quantization.calibrate import CalibraterBase

    from styleforge.runtime.custom_ops import register_schema, register_with_onnxruntime

    register_schema()
    original = CalibraterBase.create_inference_session

    def create_inference_session(self: Any) -> None:
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        register_with_onnxruntime(options)
        self.infer_session = onnxruntime.InferenceSession(self.augmented_model_path, sess_options=options,
                                                          providers=self.execution_providers)

    CalibraterBase.create_inference_session = create_inference_session
    try:
        yield
    finally:
        CalibraterBase.create_inference_session = original


def range_margin(opts: QuantizeOptions) -> float:
    """The factor calibrated ranges are widened by (``range_margin``, or its per-type default)."""
    if opts.range_margin is not None:
        return opts.range_margin
    return 1.0 if opts.quantization_type == "int8" else 2.0


def widen_ranges(cache: Path, margin: float) -> None:
    """Multiply every range of ONNX Runtime's calibration cache by ``margin`` (in place)."""
    from onnxruntime.quantization.calibrate import TensorData, TensorsData, load_tensors_data, save_tensors_data

    data = load_tensors_data(cache)
    widened = {}
    for name, tensor in data.items():
        fields = {key: value for key, value in tensor.to_dict().items() if key != "CLS"}
        fields["lowest"] = (np.asarray(tensor.lowest) * margin).astype(np.float32)
        fields["highest"] = (np.asarray(tensor.highest) * margin).astype(np.float32)
        widened[name] = TensorData(**fields)
    save_tensors_data(TensorsData(data.calibration_method, widened), cache)


def edge_nodes(model: Any, op_types: list[str]) -> list[str]:
    """Names of the first and the last node of the quantised kinds (nodes are in graph
    order): the layers ``float_first_last`` keeps in float."""
    nodes = [node for node in model.graph.node if node.op_type in op_types]
    edges = {id(n): n for n in (nodes[:1] + nodes[-1:])}.values()
    if any(not node.name for node in edges):
        raise StyleforgeError("the model's first or last layer has no node name; set float_first_last = False")
    return [node.name for node in edges]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the toolkit's progress prints and advice (styleforge prints its own summary)."""
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.disable(logging.NOTSET)


class _Reader:
    """ONNX Runtime's CalibrationDataReader over prepared feeds (one dict per batch)."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self.feeds, self.index = feeds, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.index >= len(self.feeds):
            return None
        self.index += 1
        return self.feeds[self.index - 1]

    def rewind(self) -> None:
        self.index = 0


def _adain_feeds(model: Any, batches: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Feeds of an AdaIN graph: batch i (padded to multiples of 8) stylised toward the float
    graph's statistics of batch i + 1's first image (cyclically), alpha 1, own content statistics."""
    import torch

    from styleforge.nets.adain import pad_for_decoder
    from styleforge.nets.onnx import OnnxAdaINNet

    float_net = OnnxAdaINNet(model.SerializeToString(), device="cpu", runtime="onnxruntime")
    images = [pad_for_decoder(torch.from_numpy(batch))[0].numpy() for batch in batches]
    styles = [float_net.statistics(torch.from_numpy(image[:1])) for image in images]
    unset = np.zeros_like(styles[0][0])
    feeds = []
    for i, image in enumerate(images):
        mean, std = styles[(i + 1) % len(styles)]
        values = (image, mean, std, np.ones((1, 1, 1, 1), np.float32), unset, unset + 1.0, np.zeros((1, 1, 1, 1), np.float32))
        feeds.append(dict(zip(ADAIN_INPUTS, values, strict=True)))
    return feeds


def _style_vector_feeds(source: Path, metadata: dict[str, str], image_input: str, batches: list[np.ndarray]
                        ) -> list[dict[str, np.ndarray]]:
    """For a style-vector export: each batch with the style vector its first image's
    predicts (the predictor beside ``source``), so that the ranges cover real vectors."""
    from PIL import Image

    from styleforge.models.formats.magenta import load_style_predictor

    predictor = load_style_predictor(source, metadata)
    feeds = []
    for batch in batches:
        pixels = np.clip(batch[0].transpose(1, 2, 0), 0, 255).astype(np.uint8)
        feeds.append({image_input: batch, STYLE_VECTOR: predictor(Image.fromarray(pixels))})
    return feeds


def _style_weights_feed(model: Any, index: int) -> dict[str, np.ndarray]:
    """For a multi-style export, batch ``index`` in style ``index mod K`` (every style calibrated); else nothing."""
    inputs = {i.name: i for i in model.graph.input}
    if STYLE_WEIGHTS not in inputs:
        return {}
    count = inputs[STYLE_WEIGHTS].type.tensor_type.shape.dim[0].dim_value
    return {STYLE_WEIGHTS: np.eye(count, dtype=np.float32)[index % count]}


def _refuse_unsupported(opts: QuantizeOptions) -> None:
    if opts.weight_quantization_alg == "threshold_search":
        raise StyleforgeError("weight_quantization_alg = threshold_search is not supported: weights have no outliers to "
                              "clip (the course itself advises naive for weights); use naive")
    if opts.device_mode == "mlu":
        raise StyleforgeError("device_mode = mlu: there is no MLU here; use clean (the runtime picks the device)")


def _check_names(model: Any, opts: QuantizeOptions) -> None:
    inputs = [i.name for i in model.graph.input]
    if inputs in (list(ADAIN_INPUTS), ["image", STYLE_WEIGHTS], ["image", STYLE_VECTOR]):  # style inputs are fed by the calibration
        inputs = inputs[:1]
    outputs = [o.name for o in model.graph.output]
    if list(opts.input_tensor_names) != inputs:
        raise StyleforgeError(f"[model] input_tensor_names = {', '.join(opts.input_tensor_names)}: the model's inputs are {', '.join(inputs)}")
    missing = [n for n in opts.output_tensor_names if n not in outputs]
    if missing:
        raise StyleforgeError(f"[model] output_tensor_names: {', '.join(missing)} not among the model's outputs {', '.join(outputs)}")


def expected_preprocessing(metadata: dict[str, str]) -> tuple[str, tuple[float, ...], tuple[float, ...]]:
    """(color_mode, mean, std) on 0-255 pixels that produce the model's input."""
    kind = metadata.get("styleforge_format")
    if kind in (STYLE_FORMAT, ADAIN_FORMAT):
        return "rgb", (0.0,), (1.0,)
    if kind == CLASSIFIER_FORMAT:
        convention = Convention.from_json(metadata["convention"])
        factor = 255.0 / convention.input_scale
        return "rgb", tuple(m * factor for m in convention.mean), tuple(s * factor for s in convention.std)
    raise StyleforgeError(f"the model is not an ONNX file exported by styleforge (styleforge_format={kind!r}); "
                          "export it with 'styleforge export' first")


def _check_preprocessing(metadata: dict[str, str], opts: QuantizeOptions) -> None:
    """Calibration data must be what the model is fed: refuse a mean/std/colour mismatch."""
    color, mean, std = expected_preprocessing(metadata)
    given_mean = np.broadcast_to(np.asarray(opts.mean), 3)
    given_std = np.broadcast_to(np.asarray(opts.std), 3)
    if opts.color_mode != color or not np.allclose(given_mean, np.broadcast_to(mean, 3), rtol=1e-3, atol=0.05) \
            or not np.allclose(given_std, np.broadcast_to(std, 3), rtol=1e-3):
        raise StyleforgeError(
            f"[preprocess] mean/std/color_mode do not match what this model takes: use color_mode = {color}, "
            f"mean = {', '.join(f'{m:g}' for m in mean)}, std = {', '.join(f'{s:g}' for s in std)}"
        )
