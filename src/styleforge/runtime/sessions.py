"""One interface over the runtimes that execute exported ONNX files.

Two runtimes read the same ``.onnx`` files:

* **ONNX Runtime** (``onnxruntime``): the reference runtime; CPU, and CUDA when the
  installed build has the CUDA execution provider.
* **OpenVINO** (``openvino``, CPU): its oneDNN int8 kernels (AVX-512 VNNI, AMX) run the
  quantised convolutions of a QDQ file as real int8 convolutions. Measured here at
  512 px on a 2-core AVX-512 VNNI/BF16 CPU, the INT8 style network runs about 3x
  faster than ONNX Runtime fp32 (docs/quantize.md). In an INT8 file the layers left
  float (instance norms, the first and last convolutions) run at the plugin's default
  precision: bf16 on CPUs with native bf16 (as PyTorch's default path; -0.2 dB PSNR
  measured), fp32 elsewhere. A float file runs in fp32 (``INFERENCE_PRECISION_HINT =
  f32``), never silently in bf16.

``runtime = auto`` picks OpenVINO for INT8 files on the CPU when it is installed and
ONNX Runtime otherwise (fp32 and INT16 files, CUDA). Both give the same outputs within
float rounding on fp32 files (tested).
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from styleforge.config import RUNTIME_CHOICES
from styleforge.errors import StyleforgeError, one_line
from styleforge.utils.fs import check_regular_file


class Session(Protocol):
    """A loaded ONNX graph: named inputs in, named outputs out (NumPy arrays)."""

    runtime: str
    description: str
    metadata: dict[str, str]
    input_names: list[str]
    output_names: list[str]

    def run(self, feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> list[np.ndarray]:
        """Run the graph; returns the requested outputs (all when ``outputs`` is None) in order."""
        ...


def require_onnxruntime() -> Any:
    """Import onnxruntime, or say how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise StyleforgeError("ONNX models need onnxruntime: pip install 'styleforge[onnx]'") from None
    return onnxruntime


def require_openvino() -> Any:
    """Import openvino, or say how to install it."""
    try:
        import openvino
    except ImportError:
        raise StyleforgeError("--runtime openvino needs OpenVINO: pip install 'styleforge[openvino]'") from None
    return openvino


def openvino_available() -> bool:
    """True when the openvino package is installed (found without importing it: the
    import costs 0.15 s, which a check alone should not)."""
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


@dataclass
class OrtSession:
    """An ONNX Runtime inference session behind :class:`Session`."""

    session: Any
    description: str
    metadata: dict[str, str]
    input_names: list[str]
    output_names: list[str]

    runtime = "onnxruntime"

    def run(self, feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> list[np.ndarray]:
        """See :meth:`Session.run`."""
        return list(self.session.run(outputs, feeds))


class OpenVinoSession:
    """An OpenVINO model on its CPU plugin behind :class:`Session`.

    The file is compiled once with dynamic shapes, used for any input. An input shape
    seen a second time gets a model compiled for exactly that shape (about 0.25 s once;
    then 10-30% faster per run at 512 px, as for video frames or a folder of same-size
    photos), kept for the last :attr:`STATIC_SHAPES` shapes.

    ``model``: an ``ov.Model``, or the path of an IR file (compiled from the path, so that
    OpenVINO's blob cache, ``CACHE_DIR`` in ``config``, finds it without hashing the graph;
    read into a model only when a static shape is compiled).
    """

    runtime = "openvino"
    STATIC_SHAPES = 8

    def __init__(self, core: Any, model: Any, config: dict[str, str], description: str, metadata: dict[str, str]) -> None:
        self.core, self._model, self.config = core, model, config
        self.description, self.metadata = description, metadata
        self.dynamic = core.compile_model(model, "CPU", config)
        self.input_names = [i.get_any_name() for i in self.dynamic.inputs]
        self.output_names = [o.get_any_name() for o in self.dynamic.outputs]
        self.seen: set[tuple[tuple[int, ...], ...]] = set()
        self.static: OrderedDict[tuple[tuple[int, ...], ...], Any] = OrderedDict()
        # Threads share the compiled models but not their infer requests (a request runs
        # one inference at a time: the web service's job threads share one loaded model):
        # id(compiled model) -> thread id -> request, dropped with an evicted static model.
        self._lock = threading.Lock()
        self._requests: dict[int, dict[int, Any]] = {}

    def run(self, feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> list[np.ndarray]:
        """See :meth:`Session.run`; safe to call from several threads at once."""
        compiled = self._compiled_for(tuple(tuple(feeds[name].shape) for name in self.input_names))
        results = self._request(compiled).infer(feeds)  # outputs copied out of the request's buffers
        wanted = outputs if outputs is not None else self.output_names
        return [np.asarray(results[compiled.output(name)]) for name in wanted]

    def _request(self, compiled: Any) -> Any:
        """This thread's infer request of ``compiled`` (created on its first use here)."""
        with self._lock:
            per_thread = self._requests.setdefault(id(compiled), {})
            if threading.get_ident() not in per_thread:
                per_thread[threading.get_ident()] = compiled.create_infer_request()
            return per_thread[threading.get_ident()]

    @property
    def model(self) -> Any:
        """The ``ov.Model`` (read from the IR file on first use when given a path)."""
        if isinstance(self._model, str):
            self._model = self.core.read_model(self._model)
        return self._model

    def _compiled_for(self, shapes: tuple[tuple[int, ...], ...]) -> Any:
        with self._lock:
            return self._compiled_locked(shapes)

    def _compiled_locked(self, shapes: tuple[tuple[int, ...], ...]) -> Any:
        if shapes in self.static:
            self.static.move_to_end(shapes)
            return self.static[shapes]
        if shapes not in self.seen:
            self.seen.add(shapes)
            return self.dynamic
        model = self.model.clone()
        model.reshape({port: list(shape) for port, shape in zip(model.inputs, shapes, strict=True)})  # by position: names may differ
        self.static[shapes] = self.core.compile_model(model, "CPU", self.config)
        if len(self.static) > self.STATIC_SHAPES:
            _, evicted = self.static.popitem(last=False)
            self._requests.pop(id(evicted), None)
        return self.static[shapes]


def is_int8_file(metadata: dict[str, str]) -> bool:
    """True when the file's styleforge metadata says it was quantised to INT8."""
    settings = json.loads(metadata.get("quantization", "null") or "null")
    return isinstance(settings, dict) and settings.get("quantization_type") == "int8"


def choose_runtime(runtime: str, device: str, metadata: dict[str, str], custom_ops: bool = False) -> str:
    """The runtime that will run a file: ``runtime`` unless ``auto`` (module docstring).
    ``custom_ops``: the file holds styleforge's own nodes (PowerDifference), which only
    ONNX Runtime runs (with styleforge's kernel registered)."""
    if runtime not in RUNTIME_CHOICES:
        raise StyleforgeError(f"--runtime {runtime!r}: use one of {', '.join(RUNTIME_CHOICES)}")
    if runtime == "openvino" and device == "cuda":
        raise StyleforgeError("--runtime openvino runs on the CPU; use --runtime onnxruntime for --device cuda")
    if runtime == "openvino" and custom_ops:
        raise StyleforgeError("this file holds PowerDifference nodes, which OpenVINO has no kernel for; "
                              "use --runtime onnxruntime (or export without --power-difference)")
    if runtime != "auto":
        return runtime
    if custom_ops:
        return "onnxruntime"
    if device != "cuda" and is_int8_file(metadata) and openvino_available() and not _cuda_provider_chosen(device):
        return "openvino"
    return "onnxruntime"


def _cuda_provider_chosen(device: str) -> bool:
    if device != "auto":
        return False
    return "CUDAExecutionProvider" in require_onnxruntime().get_available_providers()


def open_session(source: str | os.PathLike[str] | bytes, device: str = "cpu", runtime: str = "auto",
                 metadata: dict[str, str] | None = None, cache_dir: str | os.PathLike[str] | None = None) -> Session:
    """Open an ONNX file (a path, or the serialised model) on ``device`` (auto|cpu|cuda).

    ``metadata``: the file's metadata when already known (derived graphs keep their
    source file's); read from the file otherwise. ``cache_dir``: where OpenVINO keeps the
    compiled blobs of a file given by path (one folder per machine), so a later run
    compiles from them.
    """
    data: bytes | None = source if isinstance(source, bytes) else None
    label = "ONNX model" if data is not None else str(check_regular_file(source, "ONNX model"))
    file_metadata, custom_ops = read_model_info(source)
    metadata = file_metadata if metadata is None else metadata
    chosen = choose_runtime(runtime, device, metadata, custom_ops)
    try:
        if chosen == "openvino":
            return _open_openvino(data if data is not None else label, device, metadata, cache_dir)
        return _open_onnxruntime(data if data is not None else label, device, metadata, custom_ops)
    except StyleforgeError:
        raise
    except Exception as exc:  # noqa: BLE001 (each runtime raises its own types for a bad file)
        raise StyleforgeError(f"cannot read ONNX model '{label}': {one_line(exc, 200)}") from None


def read_model_info(source: str | os.PathLike[str] | bytes) -> tuple[dict[str, str], bool]:
    """The file's ``metadata_props`` as a dict, and whether it holds styleforge's own nodes
    (read by :mod:`~styleforge.runtime.onnx_header`, without importing ``onnx``)."""
    from styleforge.runtime.custom_ops import DOMAIN
    from styleforge.runtime.onnx_header import read_header

    try:
        header = read_header(source)
    except Exception as exc:  # noqa: BLE001 (OSError, protobuf's DecodeError)
        raise StyleforgeError(f"cannot read ONNX model '{source if not isinstance(source, bytes) else 'in memory'}': "
                              f"{one_line(exc, 200)}") from None
    return header.metadata, DOMAIN in header.domains


def _open_onnxruntime(source: str | bytes, device: str, metadata: dict[str, str], custom_ops: bool = False) -> OrtSession:
    ort = require_onnxruntime()
    available = ort.get_available_providers()
    if device == "cuda" and "CUDAExecutionProvider" not in available:
        raise StyleforgeError("--device cuda: this onnxruntime has no CUDA execution provider (install onnxruntime-gpu)")
    use_cuda = device in ("cuda", "auto") and "CUDAExecutionProvider" in available
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if use_cuda else ["CPUExecutionProvider"]
    options = ort.SessionOptions()
    options.log_severity_level = 3  # buffer re-use notes on every new input size are not the user's concern
    kernel = ""
    if custom_ops:
        from styleforge.runtime.custom_ops import register_with_onnxruntime

        kernel = f", PowerDifference: {register_with_onnxruntime(options)} kernel"
    session = ort.InferenceSession(source, sess_options=options, providers=providers)
    where = "cuda" if use_cuda else "cpu"
    return OrtSession(session, f"{where} (onnxruntime {ort.__version__}, {session.get_providers()[0]}{kernel})", metadata,
                      [i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()])


@functools.cache
def _openvino_core() -> Any:
    """The process's one OpenVINO Core. OpenVINO expects one per application; with one
    per session, destroying two of them left the process unable to take any signal
    afterwards (a segfault on the next Ctrl-C or SIGUSR1, found by the test suite)."""
    return require_openvino().Core()


def _open_openvino(source: str | bytes, device: str, metadata: dict[str, str],
                   cache_dir: str | os.PathLike[str] | None = None) -> OpenVinoSession:
    ov = require_openvino()
    core = _openvino_core()
    config = {"PERFORMANCE_HINT": "LATENCY"}
    if cache_dir is not None and not isinstance(source, bytes):
        model: Any = str(Path(source))  # compiled from the path: the blob cache finds it without hashing the graph
        config["CACHE_DIR"] = str(cache_dir)
    else:
        model = core.read_model(source if isinstance(source, bytes) else str(Path(source)))
    if not is_int8_file(metadata):
        config["INFERENCE_PRECISION_HINT"] = "f32"  # a float file runs in float, not OpenVINO's default bf16
    session = OpenVinoSession(core, model, config, "", metadata)
    precision = _short_type(session.dynamic.get_property("INFERENCE_PRECISION_HINT"))
    layers = f"int8 convolutions, {precision} elsewhere" if is_int8_file(metadata) else precision
    session.description = f"cpu (openvino {ov.__version__.split('-')[0]}, CPU plugin, {layers})"
    return session


def open_openvino_ir(path: str | os.PathLike[str], precision: str, cache_dir: str | os.PathLike[str],
                     metadata: dict[str, str]) -> OpenVinoSession:
    """An OpenVINO IR file (``NAME.xml`` beside its ``NAME.bin``, float32 weights) compiled
    for the CPU, its compiled blobs kept in ``cache_dir`` (one folder per machine: a blob
    is specific to the CPU and the OpenVINO version).

    Args:
        path: the ``.xml`` file.
        precision: ``fp32`` or ``bf16`` (OpenVINO's ``INFERENCE_PRECISION_HINT``; give bf16
            only where the CPU runs it natively).
        cache_dir: the blob cache folder.
        metadata: what the session's ``metadata`` reports.

    Returns:
        The session; its description names OpenVINO and the precision it runs in.
    """
    ov = require_openvino()
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": {"fp32": "f32", "bf16": "bf16"}[precision],
              "CACHE_DIR": str(cache_dir)}
    session = OpenVinoSession(_openvino_core(), str(path), config, "", metadata)
    used = _short_type(session.dynamic.get_property("INFERENCE_PRECISION_HINT"))
    session.description = f"cpu (openvino {ov.__version__.split('-')[0]}, CPU plugin, {used})"
    return session


def _short_type(element_type: Any) -> str:
    """OpenVINO's element type as a short name (bfloat16 -> bf16, f32 stays)."""
    name = str(element_type).replace("<Type: '", "").replace("'>", "")
    return {"bfloat16": "bf16", "float32": "fp32", "f32": "fp32", "float16": "fp16"}.get(name, name)
