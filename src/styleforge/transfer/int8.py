"""``transfer --precision int8``: a PyTorch style model quantised to INT8 once, cached, and
run by OpenVINO's int8 kernels (VNNI, AMX) or ONNX Runtime.

**The copy.** The model is exported to ONNX as ``styleforge export`` does (checked against
PyTorch), in the one style or blend of ``--style-weights``, and quantised with
:func:`~styleforge.deploy.quantize.quantize_style_export`: per-channel weight scales,
the first and last convolutions in float, activation ranges calibrated on the four real
photos shipped in ``styleforge/data/calibration`` (``SOURCES.txt`` there), each resized
and centre-cropped to 256 x 256. The file is kept in ``<cache>/int8/<key>/``; the key
hashes the model file, the blend and the styleforge, ONNX Runtime and onnx versions, so
a retrained model is quantised again.

**Its fidelity.** The first run of each runtime on a copy measures the PSNR of its 8-bit
output against PyTorch fp32 on those four photos (long side 384) and records it beside
the copy (``fidelity.json``); ``transfer`` prints it on its first line, so a user sees
what INT8 costs for this model before judging the pictures.

AdaIN and style-vector networks take their style as an input tensor, whose range a
calibration on fixed paintings would not cover: they are refused with the way to export
and quantise them by hand (:mod:`~styleforge.models.option_rules`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from styleforge import __version__
from styleforge.config import TransferOptions
from styleforge.images.io import read_image
from styleforge.images.samples import shipped_photos
from styleforge.images.tensors import images_to_tensor, tensor_to_images
from styleforge.models.blends import style_mix
from styleforge.models.loading import ModelInfo, inspect_model, load_network
from styleforge.models.store import package_version
from styleforge.transfer.runtimes import CachedCopy
from styleforge.utils.fs import read_figures, record_figures
from styleforge.utils.home import styleforge_home

if TYPE_CHECKING:
    from styleforge.nets.onnx import OnnxTransformNet

#: Side of the square crops the calibration photos are quantised on.
CALIBRATION_SIDE = 256


@dataclass
class Int8Copy(CachedCopy):
    """The cached INT8 file of one model and blend, and the PSNRs measured of it."""

    @property
    def model(self) -> Path:
        """The quantised ONNX file."""
        return self.folder / "model_int8.onnx"

    @property
    def fidelity_file(self) -> Path:
        """Runtime -> PSNR (dB) against PyTorch fp32, with the build's seconds."""
        return self.folder / "fidelity.json"

    def exists(self) -> bool:
        """True when the quantised file is cached."""
        return self.model.is_file()

    def fidelity(self) -> dict[str, float]:
        """The recorded figures (empty when none or unreadable)."""
        return read_figures(self.fidelity_file)

    def record(self, **values: float) -> None:
        """Merge ``values`` into the recorded figures; a cache that cannot be written only
        loses them."""
        record_figures(self.fidelity_file, **values)


def blend_of(info: ModelInfo, opts: TransferOptions) -> str | None:
    """The ``--style-weights`` the copy bakes in (None: style 0 of a multi-style model, or
    the one style)."""
    return opts.style_weights if info.styles > 1 else None


def copy_key(info: ModelInfo, blend: str | None) -> str:
    """A hash of the model file's bytes, the blend and the versions of what writes the copy."""
    digest = hashlib.sha256(f"{__version__}|{package_version('onnxruntime')}|{package_version('onnx')}|{blend}".encode())
    with info.path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:32]


def int8_copy(info: ModelInfo, opts: TransferOptions) -> tuple[Int8Copy, float | None]:
    """The cached INT8 copy of the model ``info`` describes in ``opts``'s blend, quantised
    now when absent; returns it with the seconds the quantisation took (None: cached).

    Raises:
        StyleforgeError: the export or the quantisation failed (nothing is cached then).
    """
    blend = blend_of(info, opts)
    copy = Int8Copy(styleforge_home() / "int8" / copy_key(info, blend))
    if copy.exists():
        return copy, None
    start = time.perf_counter()
    build_copy(info.path, blend, copy.folder)
    seconds = time.perf_counter() - start
    copy.record(build_seconds=seconds)
    return copy, seconds


def build_copy(model: Path, blend: str | None, folder: Path) -> None:
    """Export ``model`` (in ``blend``), quantise it on :func:`~styleforge.images.samples.shipped_photos` and move the
    file into ``folder``; a process stopped midway leaves nothing in ``folder``."""
    from styleforge.deploy.export import export_style_model
    from styleforge.deploy.quantize import quantize_style_export

    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{folder.name}.", dir=folder.parent) as work:
        work_dir = Path(work)
        calibration = work_dir / "calibration"
        calibration.mkdir()
        photos = shipped_photos()
        for photo in photos:
            shutil.copyfile(photo, calibration / photo.name)
        exported = export_style_model(model, work_dir / "model.onnx", style_weights=blend).path
        quantize_style_export(exported, calibration, work_dir / "model_int8.onnx", "int8", len(photos), CALIBRATION_SIDE)
        folder.mkdir(exist_ok=True)
        os.replace(work_dir / "model_int8.onnx", folder / "model_int8.onnx")


def measured_psnr(copy: Int8Copy, info: ModelInfo, opts: TransferOptions,
                  int8_net: Callable[[torch.Tensor], torch.Tensor], runtime: str) -> float:
    """The PSNR (dB) of ``int8_net`` (the copy opened in ``runtime``) against the model's
    PyTorch fp32 network on the calibration photos, measured once per runtime and recorded."""
    recorded = copy.fidelity().get(f"psnr_db_{runtime}")
    if recorded is not None:
        return recorded
    from styleforge.deploy.fidelity import psnr

    reference, _ = load_network(info)
    if (blend := blend_of(info, opts)) is not None:
        reference.select_styles(style_mix(blend, info.style_names, info.styles))
    reference = reference.float().eval()
    values = []
    with torch.inference_mode():
        for photo in shipped_photos():
            x = images_to_tensor([read_image(photo)], torch.device("cpu"))
            values.append(psnr(tensor_to_images(int8_net(x))[0], tensor_to_images(reference(x))[0]))
    value = float(np.mean(values))
    copy.record(**{f"psnr_db_{runtime}": value})
    return value


def int8_model_info(info: ModelInfo, opts: TransferOptions) -> tuple[ModelInfo, Int8Copy, float | None]:
    """The :class:`ModelInfo` of the INT8 copy of ``info``'s model (quantised first when not
    cached), the copy, and the seconds the quantisation took (None: cached)."""
    copy, seconds = int8_copy(info, opts)
    return inspect_model(copy.model), copy, seconds


def open_copy(copy: Int8Copy, opts: TransferOptions) -> tuple[OnnxTransformNet, dict]:
    """The INT8 file opened in ``opts.runtime`` (OpenVINO under ``auto`` where installed),
    OpenVINO's compiled blobs kept per machine beside it (opening it again costs about
    0.8 s a run without them), and its metadata."""
    from styleforge.nets.onnx import OnnxTransformNet
    from styleforge.runtime.sessions import open_session

    session = open_session(copy.model, opts.device, opts.runtime, cache_dir=copy.blobs)
    net = OnnxTransformNet(str(copy.model), opts.device, opts.runtime, session=session)
    return net, dict(net.metadata)


def describe(psnr_db: float, seconds: float | None) -> str:
    """The reason ``transfer`` prints for an INT8 run: how the copy came about and its PSNR."""
    made = f"quantised now in {seconds:.1f} s, cached" if seconds is not None else "cached"
    return (f"--precision int8: {made}; {psnr_db:.1f} dB PSNR against fp32 on {len(shipped_photos())} calibration photos")

