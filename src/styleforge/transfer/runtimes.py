"""Which runtime runs a PyTorch style network's whole images on the CPU: PyTorch, or an
OpenVINO copy of the network converted once per model and cached.

**The copy.** The network as configured for the job (its style or blend selected,
``--strength-mode norm`` applied) is traced in export mode (one graph for every batch and
size, as the ONNX export traces it), converted with ``openvino.convert_model`` and checked
against PyTorch on two sizes before it is used. Its IR (``model.xml``/``.bin``, float32)
is kept in ``<cache>/openvino/<fingerprint>/``; the fingerprint hashes the parameters,
buffers and module settings with the torch, OpenVINO and styleforge versions, so any
change to the network is a new copy. Compiled blobs are kept per machine beside it
(``blobs-<machine>/``: a blob is specific to the CPU and the OpenVINO version). The copy
runs in fp32, or in bf16 where the CPU has it natively and the precision is ``auto`` or
``bf16`` (47 dB PSNR against fp32 on a Zen 4, the same as PyTorch's default bf16 path).

**The choice** (``--runtime auto``, :func:`choose_runtime`): OpenVINO when the job's
saving repays its start, weighed with this machine's measured speeds of the model on both
runtimes when it has them (``timings-<machine>.json`` beside the copy), with
:class:`~styleforge.config.RuntimePolicy`'s thresholds before. A job too small to repay a
first conversion runs in PyTorch, and the conversion and a timing of both runtimes then
run in a background process (:mod:`styleforge.transfer.background`) for the next run.
Tiles always run in PyTorch (they share the whole image's statistics); AdaIN and
style-vector models, ``--compile``, ``--power-difference`` and CUDA stay in PyTorch. Each
choice carries its reason, which ``transfer`` prints first.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from styleforge import __version__
from styleforge.config import RuntimePolicy
from styleforge.devices import cpu_flags, cpu_has_bf16
from styleforge.errors import StyleforgeError, one_line
from styleforge.nets.transform_net import MIN_SIDE, TransformNet, export_mode
from styleforge.utils.home import styleforge_home


class RunnableModel(Protocol):
    """What this module needs of a loaded style model (``transfer.model.StyleModel``
    satisfies it; naming the protocol here keeps ``model`` -> ``runtimes`` one-way)."""

    net: torch.nn.Module
    options: Any
    device: torch.device
    source: Path | None
    forward: Any
    runtime_description: str | None

#: Largest difference (0-255 units) the OpenVINO copy may have from PyTorch on its check
#: images (fp32 rounding gives about 0.005; the ONNX export allows 0.05).
COPY_TOLERANCE = 0.05


@dataclass
class Timings:
    """What this machine measured for one model: seconds per megapixel of whole images in
    each runtime, the first use of OpenVINO (conversion and compilation) and a later start
    (import and compilation from the blob cache), in seconds. None: not measured yet."""

    pytorch: float | None = None
    openvino: float | None = None
    first_use: float | None = None
    start: float | None = None


@dataclass
class ConvertedCopy:
    """The OpenVINO copy of one configured network: where it lives and what was measured."""

    folder: Path

    @property
    def xml(self) -> Path:
        """The IR file."""
        return self.folder / "model.xml"

    @property
    def blobs(self) -> Path:
        """This machine's compiled-blob folder."""
        return self.folder / f"blobs-{machine_key()}"

    @property
    def timings_file(self) -> Path:
        """This machine's measured speeds of the model."""
        return self.folder / f"timings-{machine_key()}.json"

    def exists(self) -> bool:
        """True when the IR is cached."""
        return self.xml.is_file() and self.xml.with_suffix(".bin").is_file()

    def timings(self) -> Timings:
        """The recorded :class:`Timings` (empty when none or unreadable)."""
        try:
            data = json.loads(self.timings_file.read_text())
            return Timings(**{k: float(v) for k, v in data.items() if k in Timings.__dataclass_fields__ and v is not None})
        except (OSError, ValueError, TypeError):
            return Timings()

    def record(self, **values: float) -> None:
        """Merge ``values`` (fields of :class:`Timings`) into the recorded timings; a cache
        that cannot be written only loses the figures."""
        timings = asdict(self.timings()) | values
        with contextlib.suppress(OSError):
            self.folder.mkdir(parents=True, exist_ok=True)
            temporary = self.timings_file.with_name(f".{self.timings_file.name}.{os.getpid()}")
            temporary.write_text(json.dumps(timings, indent=1))
            os.replace(temporary, self.timings_file)


@dataclass
class RuntimeChoice:
    """The runtime of a job's whole images and why. ``copy``: the model's OpenVINO copy,
    for a network that can have one (where the job's speed is recorded)."""

    runtime: str
    reason: str
    copy: ConvertedCopy | None = field(default=None, repr=False)

    @property
    def line(self) -> str:
        """The line ``transfer`` prints first."""
        return f"runtime: {self.runtime} ({self.reason})"


def machine_key() -> str:
    """A short key of this CPU and OpenVINO version (compiled blobs and timings are per machine)."""
    import openvino

    model_name = next((line.partition(":")[2].strip() for line in _cpuinfo_lines() if line.startswith("model name")), "")
    text = f"{platform.machine()}|{model_name}|{' '.join(sorted(cpu_flags()))}|{os.cpu_count()}|{openvino.__version__}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _cpuinfo_lines() -> list[str]:
    try:
        with open("/proc/cpuinfo") as handle:
            return handle.readlines()[:40]
    except OSError:
        return []


def fingerprint(net: torch.nn.Module) -> str:
    """A hash of everything the traced graph depends on: parameters and buffers (the
    unsaved ones too, such as a style blend), every module's own settings, and the torch,
    OpenVINO and styleforge versions."""
    import openvino

    digest = hashlib.sha256(f"{torch.__version__}|{openvino.__version__}|{__version__}".encode())
    tensors = dict(net.named_parameters()) | dict(net.named_buffers())  # non-persistent buffers too (a style blend)
    for name, tensor in sorted(tensors.items()):
        digest.update(name.encode())
        _hash_value(digest, tensor)
    for name, module in net.named_modules():
        digest.update(f"{name}:{type(module).__qualname__}".encode())
        for key, value in sorted(vars(module).items()):
            if not key.startswith("_"):
                digest.update(key.encode())
                _hash_value(digest, value)
    return digest.hexdigest()[:32]


def _hash_value(digest: Any, value: object) -> None:
    if isinstance(value, torch.Tensor):
        flat = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{value.dtype}{tuple(value.shape)}".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    elif isinstance(value, (tuple, list)):
        for item in value:
            _hash_value(digest, item)
    elif value is None or isinstance(value, (bool, int, float, str)):
        digest.update(repr(value).encode())
    else:  # callables and sub-modules (the latter are hashed as modules of their own)
        digest.update(type(value).__qualname__.encode())


def copy_of(net: torch.nn.Module) -> ConvertedCopy:
    """Where the OpenVINO copy of ``net`` is (or would be) cached."""
    return ConvertedCopy(styleforge_home() / "openvino" / fingerprint(net))


def pytorch_only_reason(model: RunnableModel) -> str | None:
    """Why ``model``'s network runs in PyTorch whatever the job, or None when it can have an OpenVINO copy."""
    from styleforge.runtime.sessions import openvino_available

    opts = model.options
    if model.device.type != "cpu":
        return f"{model.device.type.upper()} runs the network in PyTorch"
    if type(model.net) is not TransformNet:
        return f"{type(model.net).__name__} networks (AdaIN, style-vector models) have no OpenVINO copy yet"
    if opts.compile:
        return "--compile runs the network through torch.compile"
    if opts.power_difference:
        return "--power-difference: OpenVINO has no PowerDifference kernel"
    if opts.precision == "bf16" and not cpu_has_bf16():
        return "--precision bf16 on a CPU without native bf16 runs in PyTorch's emulation; OpenVINO would run fp32"
    if not openvino_available():
        return "OpenVINO is not installed (pip install 'styleforge[openvino]')"
    return None


def choose_runtime(model: RunnableModel, work_megapixels: float, policy: RuntimePolicy) -> RuntimeChoice:
    """The runtime of ``model``'s whole images for a job of ``work_megapixels`` (math.inf
    for a long-lived service) under ``model.options.runtime`` (see the module docstring).

    Raises:
        StyleforgeError: ``--runtime openvino`` for a network or setting that has no OpenVINO copy.
    """
    requested = model.options.runtime
    if requested == "pytorch":
        return RuntimeChoice("pytorch", "--runtime pytorch")
    reason = pytorch_only_reason(model)
    if reason is not None:
        if requested == "openvino":
            raise StyleforgeError(f"--runtime openvino: {reason}; use --runtime pytorch (or auto)")
        return RuntimeChoice("pytorch", reason)
    copy = copy_of(model.net)
    if requested == "openvino":
        return RuntimeChoice("openvino", "--runtime openvino" + ("" if copy.exists() else ", converted once for this model"), copy)
    return _weighed_choice(copy, work_megapixels, policy)


def _weighed_choice(copy: ConvertedCopy, work: float, policy: RuntimePolicy) -> RuntimeChoice:
    cached, timings = copy.exists(), copy.timings()
    if timings.pytorch and timings.openvino:
        speedup = timings.pytorch / timings.openvino
        if speedup <= 1.0:
            return RuntimeChoice("pytorch", f"OpenVINO measured no faster for this model here ({speedup:.2f}x)", copy)
        cost = (timings.start if cached else timings.first_use) or (0.5 if cached else 3.0)
        saving = work * (timings.pytorch - timings.openvino)
        if saving > cost:
            return RuntimeChoice("openvino", f"{speedup:.2f}x PyTorch measured here" + ("" if cached else "; converting once"), copy)
        return RuntimeChoice("pytorch", f"a job of {work:.2f} MP saves less than OpenVINO's {cost:.1f} s start", copy)
    if cached:
        if work >= policy.warm_min_megapixels:
            return RuntimeChoice("openvino", "converted copy cached for this model", copy)
        return RuntimeChoice("pytorch", f"a job of {work:.2f} MP is below OpenVINO's start cost", copy)
    if work >= policy.cold_min_megapixels:
        return RuntimeChoice("openvino", "converting once for this model (about 2 s), cached for later runs", copy)
    return RuntimeChoice("pytorch", f"first use of this model: a job of {work:.2f} MP does not repay converting it "
                         "to OpenVINO now", copy)


def start_runtime(model: RunnableModel, work_megapixels: float, policy: RuntimePolicy) -> RuntimeChoice:
    """Choose the runtime (:func:`choose_runtime`) and set ``model.forward`` to it; in
    ``auto``, a copy that cannot be made or disagrees with PyTorch leaves the model in
    PyTorch with that reason.

    Raises:
        StyleforgeError: with ``--runtime openvino``, the same failures.
    """
    choice = choose_runtime(model, work_megapixels, policy)
    if choice.runtime == "openvino":
        try:
            model.forward, model.runtime_description = openvino_forward(model, choice.copy)
        except StyleforgeError as exc:
            if model.options.runtime == "openvino":
                raise
            return RuntimeChoice("pytorch", f"OpenVINO copy failed: {exc}", choice.copy)
    elif choice.copy is not None and _background_applies(choice, work_megapixels, policy):
        choice.reason += start_background_conversion(model, choice.copy)
    return choice


def openvino_forward(model: RunnableModel, copy: ConvertedCopy | None) -> tuple[Any, str]:
    """The callable running ``model``'s whole images on its OpenVINO copy (converted and
    checked first when not cached), and its device description.

    Raises:
        StyleforgeError: conversion failed or the copy disagrees with PyTorch.
    """
    from styleforge.nets.onnx import OnnxTransformNet
    from styleforge.runtime.exports import STYLE_FORMAT
    from styleforge.runtime.sessions import open_openvino_ir

    net = model.net
    copy = copy or copy_of(net)
    precision = "bf16" if model.options.precision == "bf16" and cpu_has_bf16() else "fp32"
    metadata = {"styleforge_format": STYLE_FORMAT, **net.convention()}
    fresh = not copy.exists()
    start = time.perf_counter()
    try:
        if fresh:
            convert(net, copy.folder)
            checked = open_openvino_ir(copy.xml, "fp32", copy.blobs, metadata)
            _check_copy(net, OnnxTransformNet(str(copy.xml), session=checked))
            session = checked if precision == "fp32" else open_openvino_ir(copy.xml, precision, copy.blobs, metadata)
        else:
            session = open_openvino_ir(copy.xml, precision, copy.blobs, metadata)
    except Exception as exc:  # noqa: BLE001 (OpenVINO's converter and runtime raise their own types)
        if fresh:
            shutil.rmtree(copy.folder, ignore_errors=True)  # never leave a copy that was not checked
        if isinstance(exc, StyleforgeError):
            raise
        raise StyleforgeError(f"OpenVINO could not convert or compile the network: {one_line(exc, 200)}") from None
    if fresh:
        copy.record(first_use=time.perf_counter() - start)
    return OnnxTransformNet(str(copy.xml), session=session), session.description


def convert(net: TransformNet, folder: Path) -> None:
    """Trace ``net`` in export mode, convert it with OpenVINO (dynamic batch, height and
    width) and save the IR into ``folder``: both files are written beside it and moved in,
    the ``.xml`` last, so a copy is whole or absent (two processes saving the same copy
    write the same files)."""
    import openvino as ov

    example = torch.rand(1, 3, 64, 48, generator=torch.Generator().manual_seed(0)) * 255
    with export_mode(net), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on shape-dependent Python values, handled by export mode
        traced = torch.jit.trace(net, example, check_trace=False)
        converted = ov.convert_model(traced, input=[ov.PartialShape([-1, 3, -1, -1])])
    converted.inputs[0].get_tensor().set_names({"image"})  # the names the ONNX export gives
    converted.outputs[0].get_tensor().set_names({"stylized"})
    temporary = folder.with_name(f".{folder.name}.{os.getpid()}")
    try:
        ov.save_model(converted, str(temporary / "model.xml"), compress_to_fp16=False)
        folder.mkdir(parents=True, exist_ok=True)  # it may hold timings already
        for name in ("model.bin", "model.xml"):  # the .xml last: it marks a whole copy
            os.replace(temporary / name, folder / name)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def _check_copy(net: TransformNet, forward: Any) -> None:
    """Compare the copy, compiled in fp32, with PyTorch in fp32 on an example and an odd
    size, within :data:`COPY_TOLERANCE`. This checks the conversion, not a precision: bf16
    is a separate compile of the same checked IR, whose fidelity the benchmarks measure
    (a random network's bf16 error says nothing about a trained one's)."""
    generator = torch.Generator().manual_seed(3)
    tolerance = COPY_TOLERANCE
    with torch.inference_mode():
        for height, width in ((64, 48), (37, MIN_SIDE + 21)):
            x = torch.rand(1, 3, height, width, generator=generator) * 255
            difference = float((forward(x) - net(x)).abs().max())
            if not difference <= tolerance:
                raise StyleforgeError(f"the OpenVINO copy disagrees with PyTorch at {width}x{height} "
                                      f"(max difference {difference:.3g} > {tolerance:g})")


def _background_applies(choice: RuntimeChoice, work: float, policy: RuntimePolicy) -> bool:
    assert choice.copy is not None
    measured = choice.copy.timings()
    return (policy.background_conversion and work >= policy.background_min_megapixels and not choice.copy.exists()
            and not (measured.pytorch and measured.openvino))


def start_background_conversion(model: RunnableModel, copy: ConvertedCopy) -> str:
    """Start :mod:`styleforge.transfer.background` for ``model``, whose copy is ``copy``
    (detached, at low priority), unless one already runs for it; returns the note for the
    runtime line."""
    if model.source is None:
        return ""
    marker = copy.folder.with_name(f".{copy.folder.name}.converting")
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        if marker.exists() and time.time() - marker.stat().st_mtime < 600:
            return "; a background conversion for the next run is under way"
        marker.write_text(str(os.getpid()))
    except OSError:
        return ""
    options = json.dumps({**asdict(model.options), "runtime": "pytorch", "device": "cpu"})
    subprocess.Popen([sys.executable, "-m", "styleforge.transfer.background", str(model.source), options, str(marker)],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)
    return "; converting in the background for the next run"


def megapixels(sizes: list[tuple[int, int]]) -> float:
    """The megapixels of images of ``sizes`` (width, height)."""
    return sum(w * h for w, h in sizes) / 1e6

