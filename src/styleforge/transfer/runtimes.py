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
runs in fp32, or in OpenVINO's bf16 where the CPU has it natively.

**The choice** (``--runtime auto``, :func:`choose_runtime`): OpenVINO when the job's
saving repays its start, weighed with this machine's measured speeds of the model
(``timings-<machine>.json`` beside the copy) and, for a bf16 job, the measured PSNR of
OpenVINO's bf16 (which rounds more than PyTorch's autocast: it is used only when it keeps
:class:`~styleforge.config.RuntimePolicy`'s fidelity, else the copy is weighed in fp32).
Before measurements: an fp32 job follows the policy's thresholds on the job's work in
GFLOP of the network (a small network gains less per pixel), a bf16 job runs in PyTorch.
A job that ran in PyTorch with the measurements incomplete has the conversion
and the timing run by a background process (:mod:`styleforge.transfer.background`)
started when this process exits, for the next run. Tiles always run in PyTorch (they
share the whole image's statistics); AdaIN and style-vector models, ``--compile``,
``--power-difference`` and CUDA stay in PyTorch. Each choice carries its reason, which
``transfer`` prints first.
"""

from __future__ import annotations

import atexit
import functools
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
from styleforge.devices import cpu_flags, cpu_has_bf16, cpu_model_name
from styleforge.errors import StyleforgeError, one_line
from styleforge.models.store import package_version
from styleforge.nets.transform_net import MIN_SIDE, TransformNet, convolution_gflop_per_megapixel, export_mode
from styleforge.utils.fs import read_figures, record_figures
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
    """What this machine measured for one model (:mod:`styleforge.transfer.background`).
    None: not measured (bf16 is measured only where the CPU runs it natively).

    Attributes:
        pytorch_fp32, pytorch_bf16: seconds per megapixel of whole images in PyTorch, as
            ``StyleModel.stylize`` runs them (bf16: autocast).
        openvino_fp32, openvino_bf16: the same for the OpenVINO copy compiled in each precision.
        pytorch_bf16_psnr_db, openvino_bf16_psnr_db: PSNR of each bf16 path's 8-bit output
            against PyTorch's fp32 output, the mean over the shipped photos (the fidelity ``auto``
            weighs: the copy's bf16 is OpenVINO's own, which rounds more than autocast).
        first_use: seconds of OpenVINO's first use (conversion, check, compilation).
        start: seconds of a later start (import, compilation from the blob cache).
    """

    pytorch_fp32: float | None = None
    pytorch_bf16: float | None = None
    openvino_fp32: float | None = None
    openvino_bf16: float | None = None
    pytorch_bf16_psnr_db: float | None = None
    openvino_bf16_psnr_db: float | None = None
    first_use: float | None = None
    start: float | None = None

    def speed(self, runtime: str, precision: str) -> float | None:
        """Seconds per megapixel of ``runtime`` (pytorch, openvino) in ``precision``."""
        return getattr(self, f"{runtime}_{precision}", None)

    def complete_for(self, precision: str) -> bool:
        """True when everything ``auto`` weighs for a job in ``precision`` is measured."""
        needed = [self.pytorch_fp32, self.openvino_fp32, self.start]
        if precision == "bf16":
            needed += [self.pytorch_bf16, self.openvino_bf16, self.pytorch_bf16_psnr_db, self.openvino_bf16_psnr_db]
        return all(value is not None for value in needed)


@dataclass
class CachedCopy:
    """A converted file of one model cached in ``folder``, with OpenVINO's compiled blobs
    for this machine beside it (the OpenVINO copy, the INT8 copy)."""

    folder: Path

    @property
    def blobs(self) -> Path:
        """This machine's OpenVINO compiled-blob folder."""
        return self.folder / f"blobs-{machine_key()}"


@dataclass
class ConvertedCopy(CachedCopy):
    """The OpenVINO copy of one configured network: where it lives and what was measured."""

    @property
    def xml(self) -> Path:
        """The IR file."""
        return self.folder / "model.xml"

    @property
    def timings_file(self) -> Path:
        """This machine's measured speeds of the model."""
        return self.folder / f"timings-{machine_key()}.json"

    def exists(self) -> bool:
        """True when the IR is cached."""
        return self.xml.is_file() and self.xml.with_suffix(".bin").is_file()

    def timings(self) -> Timings:
        """The recorded :class:`Timings` (empty when none or unreadable)."""
        return Timings(**{k: v for k, v in read_figures(self.timings_file).items() if k in Timings.__dataclass_fields__})

    def record(self, **values: float) -> None:
        """Merge ``values`` (fields of :class:`Timings`) into the recorded timings; a cache
        that cannot be written only loses the figures."""
        record_figures(self.timings_file, **values)


@dataclass
class RuntimeChoice:
    """The runtime of a job's whole images and why. ``copy``: the model's OpenVINO copy,
    for a network that can have one (where the job's speed is recorded)."""

    runtime: str
    reason: str
    copy: ConvertedCopy | None = field(default=None, repr=False)
    precision: str = "fp32"  # the OpenVINO copy's

    @property
    def line(self) -> str:
        """The line ``transfer`` prints first."""
        return f"runtime: {self.runtime} ({self.reason})"


@functools.cache
def machine_key() -> str:
    """A short key of this CPU and OpenVINO version (compiled blobs and timings are per
    machine); computed once per process."""
    text = f"{platform.machine()}|{cpu_model_name()}|{' '.join(sorted(cpu_flags()))}|{os.cpu_count()}|{openvino_version()}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def openvino_version() -> str:
    """The installed OpenVINO's version, read from its package metadata: importing
    OpenVINO costs 0.15 s, which a job that stays in PyTorch should not pay."""
    return package_version("openvino") or "none"


def fingerprint(net: torch.nn.Module) -> str:
    """A hash of everything the traced graph depends on: parameters and buffers (the
    unsaved ones too, such as a style blend), every module's own settings, and the torch,
    OpenVINO and styleforge versions."""
    digest = hashlib.sha256(f"{torch.__version__}|{openvino_version()}|{__version__}".encode())
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
    precision = "bf16" if model.options.precision == "bf16" else "fp32"
    if requested == "openvino":
        return RuntimeChoice("openvino", "--runtime openvino" + ("" if copy.exists() else ", converted once for this model"),
                             copy, precision)
    return _weighed_choice(copy, precision, work_megapixels, policy, model.net)


def faithful_openvino_speeds(timings: Timings, precision: str, policy: RuntimePolicy) -> dict[str, float]:
    """The copy's measured seconds per megapixel in each precision that keeps fidelity for a
    job in ``precision``: fp32 always; bf16 for a bf16 job when its PSNR against fp32 is at
    least ``policy.min_psnr_db`` or within ``policy.psnr_tolerance_db`` of PyTorch's bf16."""
    speeds = {"fp32": timings.openvino_fp32} if timings.openvino_fp32 else {}
    if precision == "bf16" and timings.openvino_bf16 and timings.openvino_bf16_psnr_db is not None:
        floor = min(policy.min_psnr_db, (timings.pytorch_bf16_psnr_db or 0.0) - policy.psnr_tolerance_db)
        if timings.openvino_bf16_psnr_db >= floor:
            speeds["bf16"] = timings.openvino_bf16
    return speeds


def _weighed_choice(copy: ConvertedCopy, precision: str, work: float, policy: RuntimePolicy,
                    net: torch.nn.Module) -> RuntimeChoice:
    cached, timings = copy.exists(), copy.timings()
    pytorch, speeds = timings.speed("pytorch", precision), faithful_openvino_speeds(timings, precision, policy)
    if pytorch and speeds:
        best = min(speeds, key=speeds.__getitem__)
        speedup = pytorch / speeds[best]
        if speedup <= 1.0:
            return RuntimeChoice("pytorch", f"OpenVINO measured no faster for this model here ({speedup:.2f}x in "
                                 f"{best}{_bf16_note(timings, precision, speeds)})", copy)
        cost = (timings.start if cached else timings.first_use) or (0.5 if cached else 3.0)
        if work * (pytorch - speeds[best]) > cost:
            return RuntimeChoice("openvino", f"{speedup:.2f}x PyTorch measured here, {best}"
                                 + ("" if cached else "; converting once"), copy, best)
        return RuntimeChoice("pytorch", f"a job of {work:.2f} MP saves less than OpenVINO's {cost:.1f} s start", copy)
    if precision != "fp32":
        return RuntimeChoice("pytorch", f"OpenVINO in {precision} is chosen only from this machine's measured speed and "
                             "PSNR of this model", copy)
    gflop = work * convolution_gflop_per_megapixel(net)
    if cached:
        if gflop >= policy.warm_min_gflop:
            return RuntimeChoice("openvino", "converted copy cached for this model", copy)
        return RuntimeChoice("pytorch", f"a job of {work:.2f} MP ({gflop:,.0f} GFLOP) is below OpenVINO's start cost", copy)
    if gflop >= policy.cold_min_gflop:
        return RuntimeChoice("openvino", "converting once for this model (about 2 s), cached for later runs", copy)
    return RuntimeChoice("pytorch", f"first use of this model: a job of {work:.2f} MP ({gflop:,.0f} GFLOP) does not "
                         "repay converting it to OpenVINO now", copy)


def _bf16_note(timings: Timings, precision: str, speeds: dict[str, float]) -> str:
    if precision == "bf16" and "bf16" not in speeds and timings.openvino_bf16_psnr_db is not None:
        return f"; its bf16 kept {timings.openvino_bf16_psnr_db:.1f} dB PSNR, too far below PyTorch's"
    return ""


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
            model.forward, model.runtime_description = openvino_forward(model, choice.copy, choice.precision)
        except StyleforgeError as exc:
            if model.options.runtime == "openvino":
                raise
            return RuntimeChoice("pytorch", f"OpenVINO copy failed: {exc}", choice.copy)
    elif choice.copy is not None and _background_applies(choice, model.options.precision, work_megapixels, policy):
        choice.reason += start_background_conversion(model, choice.copy)
    return choice


def openvino_forward(model: RunnableModel, copy: ConvertedCopy | None, precision: str = "fp32") -> tuple[Any, str]:
    """The callable running ``model``'s whole images on its OpenVINO copy (converted and
    checked first when not cached) compiled in ``precision`` (bf16 only where the CPU runs
    it natively; fp32 otherwise), and its device description.

    Raises:
        StyleforgeError: conversion failed or the copy disagrees with PyTorch.
    """
    from styleforge.nets.onnx import OnnxTransformNet
    from styleforge.runtime.sessions import open_openvino_ir

    net = model.net
    copy = copy or copy_of(net)
    precision = "bf16" if precision == "bf16" and cpu_has_bf16() else "fp32"
    metadata = openvino_metadata(net)
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


def openvino_metadata(net: TransformNet) -> dict[str, str]:
    """The metadata a session of ``net``'s OpenVINO copy reports (an IR file carries none):
    the style format and the network's image convention, as an ONNX export's."""
    from styleforge.runtime.exports import STYLE_FORMAT

    return {"styleforge_format": STYLE_FORMAT, **net.convention()}


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
    with torch.inference_mode():
        for height, width in ((64, 48), (37, MIN_SIDE + 21)):
            x = torch.rand(1, 3, height, width, generator=generator) * 255
            difference = float((forward(x) - net(x)).abs().max())
            if not difference <= COPY_TOLERANCE:
                raise StyleforgeError(f"the OpenVINO copy disagrees with PyTorch at {width}x{height} "
                                      f"(max difference {difference:.3g} > {COPY_TOLERANCE:g})")


def _background_applies(choice: RuntimeChoice, precision: str, work: float, policy: RuntimePolicy) -> bool:
    assert choice.copy is not None
    return (policy.background_conversion and work >= policy.background_min_megapixels
            and not choice.copy.timings().complete_for(precision))


#: Background conversions to start when this process exits (:func:`start_pending_conversions`).
_PENDING: list[list[str]] = []


def start_background_conversion(model: RunnableModel, copy: ConvertedCopy) -> str:
    """Have :mod:`styleforge.transfer.background` convert and time ``model`` (whose copy is
    ``copy``) once this process exits, unless one already runs for it; returns the note for
    the runtime line. At exit, not now: on a machine of few cores a conversion beside the
    job slowed a one-photo run 2x, and its timings were skewed by the job."""
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
    if not _PENDING:
        atexit.register(start_pending_conversions)
    _PENDING.append([sys.executable, "-m", "styleforge.transfer.background", str(model.source), options, str(marker)])
    return "; converting in the background after this run, for the next"


def start_pending_conversions() -> None:
    """Start the background conversions this process asked for (detached, niced); runs at
    exit, and may be called earlier by a long-lived program between jobs."""
    while _PENDING:
        subprocess.Popen(_PENDING.pop(0), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)


def megapixels(sizes: list[tuple[int, int]]) -> float:
    """The megapixels of images of ``sizes`` (width, height)."""
    return sum(w * h for w, h in sizes) / 1e6

