"""``styleforge bench``: every runtime of one model side by side, speed and fidelity.

For a style model, at each size: PyTorch fp32 eager (the reference), PyTorch's default
path (``transfer``'s precision and memory format), ONNX Runtime fp32, INT8 and INT16
(quantised here with :mod:`~styleforge.deploy.quantize`, calibrated on the images),
OpenVINO INT8 (the INT8 runtime ``auto`` picks, when installed) and the CUDA rows when
a GPU is present. For the classifier: the same rows at its input size.

Latency is the median over ``repeat`` timed runs after ``warmup`` untimed ones, each run
stylising (or classifying) one image; the course's 10-run "processing time" loop is
``repeat=10``. Fidelity is against PyTorch fp32 over every image given: mean PSNR and
SSIM of the stylised images (:mod:`~styleforge.deploy.fidelity`), or top-1 agreement
and the largest probability difference for the classifier.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from styleforge.config import QuantizeOptions, TransferOptions
from styleforge.deploy.fidelity import psnr, ssim
from styleforge.errors import StyleforgeError
from styleforge.images.io import find_images, read_image, resize_long_side


@dataclass
class BenchRow:
    """One runtime at one size: latency and fidelity against PyTorch fp32."""

    model: str
    path: str
    device: str
    size: int
    ms: float
    images_per_s: float
    psnr_db: float | None = None
    ssim: float | None = None
    top1_agreement: float | None = None
    max_prob_diff: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (infinite PSNR as None)."""
        row = asdict(self)
        if row["psnr_db"] is not None and not np.isfinite(row["psnr_db"]):
            row["psnr_db"] = None
        return row


def bench_images(data: str | None) -> list[Image.Image]:
    """The images to run on: every image under ``data`` (a folder), or the packaged photo."""
    if data is None:
        from styleforge.deploy.export import verification_photo

        return [verification_photo()]
    folder = Path(data)
    files = find_images(folder) if folder.is_dir() else [folder]
    if not files:
        raise StyleforgeError(f"--data '{data}' holds no images")
    return [read_image(f) for f in files]


def time_median(run: Callable[[], object], repeat: int, warmup: int) -> float:
    """Median seconds of ``run()`` over ``repeat`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_style(model_path: str, images: list[Image.Image], sizes: list[int], repeat: int = 10, warmup: int = 2,
                calibration: list[Image.Image] | None = None, styles: tuple[str, ...] = ()) -> list[BenchRow]:
    """Rows for a style model (module docstring); INT8/INT16 are calibrated on
    ``calibration`` (default: ``images``); ``styles`` are the paintings of a model that
    takes any (AdaIN, a style-vector network), given to every runtime."""
    from styleforge.deploy.export import export_style_model
    from styleforge.transfer.model import load_style_model

    name = Path(model_path).name
    for style in styles:  # refuse an unreadable painting before the minutes of export and quantisation
        read_image(style)
    with tempfile.TemporaryDirectory(prefix="styleforge-bench-") as folder:
        onnx_path = export_style_model(model_path, Path(folder) / "model.onnx").path
        quantized = {kind: _quantize_style(onnx_path, calibration or images, kind, Path(folder)) for kind in ("int8", "int16")}
        runtimes = {
            "pytorch fp32 eager": load_style_model(model_path, options=TransferOptions(device="cpu", precision="fp32", styles=styles)),
            "pytorch default": load_style_model(model_path, options=TransferOptions(device="cpu", styles=styles)),
        }
        for path, file in _onnx_rows(onnx_path, quantized).items():
            runtime = path.split()[0]
            runtimes[path] = load_style_model(file, options=TransferOptions(device="cpu", runtime=runtime, styles=styles))
        runtimes |= _cuda_style_runtimes(model_path, styles)
        rows = []
        for size in sizes:
            scaled = [resize_long_side(img, size) for img in images]
            reference = [runtimes["pytorch fp32 eager"].stylize(img) for img in scaled]
            for path, model in runtimes.items():
                seconds = time_median(lambda m=model: m.stylize(scaled[0]), repeat, warmup)
                outputs = [model.stylize(img) for img in scaled]
                rows.append(BenchRow(name, path, model.device_description, size, 1000 * seconds, 1 / seconds,
                                     psnr_db=float(np.mean([psnr(o, r) for o, r in zip(outputs, reference, strict=True)])),
                                     ssim=float(np.mean([ssim(o, r) for o, r in zip(outputs, reference, strict=True)]))))
    return rows


def _onnx_rows(fp32: Path, quantized: dict[str, Path]) -> dict[str, Path]:
    """Row name -> file for the exported model's runtimes: ONNX Runtime fp32, INT8 and
    INT16, and OpenVINO INT8 (the INT8 runtime of ``auto``) when it is installed."""
    from styleforge.runtime.sessions import openvino_available

    rows = {"onnxruntime fp32": fp32, "onnxruntime int8": quantized["int8"]}
    if openvino_available():
        rows["openvino int8"] = quantized["int8"]
    return rows | {"onnxruntime int16": quantized["int16"]}


def _quantize_style(onnx_path: Path, images: list[Image.Image], kind: str, folder: Path) -> Path:
    from styleforge.deploy.quantize import quantize_style_export

    calibration = _calibration_folder(images, folder / f"calibration-{kind}")
    side = min(256, max(min(img.size) for img in images))
    return quantize_style_export(onnx_path, calibration, folder / f"model_{kind}.onnx", kind, min(8, len(images)), side).path


def _cuda_style_runtimes(model_path: str, styles: tuple[str, ...] = ()) -> dict[str, Any]:
    import torch

    from styleforge.transfer.model import load_style_model

    if not torch.cuda.is_available():
        return {}
    return {"pytorch cuda fp32": load_style_model(model_path, options=TransferOptions(device="cuda", precision="fp32", styles=styles)),
            "pytorch cuda default": load_style_model(model_path, options=TransferOptions(device="cuda", styles=styles))}


def bench_classifier(weights: str, images: list[Image.Image], repeat: int = 10, warmup: int = 2,
                     calibration: list[Image.Image] | None = None) -> list[BenchRow]:
    """Rows for the VGG19 classifier of ``weights``: PyTorch fp32, ONNX fp32/INT8/INT16
    (INT8 also on OpenVINO), calibrated on ``calibration`` (default: ``images``)."""
    from styleforge.deploy.export import export_classifier
    from styleforge.vgg.network import load_vgg19
    from styleforge.vgg.onnx_classifier import OnnxClassifier

    vgg = load_vgg19(weights, device="cpu")
    size = 32 * vgg.pool_grid
    name = Path(weights).name
    with tempfile.TemporaryDirectory(prefix="styleforge-bench-") as folder:
        onnx_path = export_classifier(weights, Path(folder) / "vgg19.onnx", size=size).path
        runners: dict[str, Callable[[list[Image.Image]], np.ndarray]] = {
            "pytorch fp32 eager": lambda imgs: vgg.probabilities(vgg.preprocess(imgs, size)).float().numpy(),
        }
        quantized = {kind: _quantize_classifier(onnx_path, calibration or images, kind, Path(folder), size)
                     for kind in ("int8", "int16")}
        for path, file in _onnx_rows(onnx_path, quantized).items():
            onnx_model = OnnxClassifier(file, device="cpu", runtime=path.split()[0])
            runners[path] = lambda imgs, m=onnx_model: m.probabilities(m.preprocess(imgs, size))
        reference = runners["pytorch fp32 eager"](images)
        rows = []
        for path, run in runners.items():
            seconds = time_median(lambda r=run: r(images[:1]), repeat, warmup)
            probs = run(images)
            rows.append(BenchRow(name, path, "cpu", size, 1000 * seconds, 1 / seconds,
                                 top1_agreement=float((probs.argmax(1) == reference.argmax(1)).mean()),
                                 max_prob_diff=float(np.abs(probs - reference).max())))
    return rows


def _quantize_classifier(onnx_path: Path, images: list[Image.Image], kind: str, folder: Path, size: int) -> Path:
    import onnx

    from styleforge.deploy.quantize import expected_preprocessing, quantize_model

    calibration = _calibration_folder(images, folder / f"calibration-{kind}")
    metadata = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    color, mean, std = expected_preprocessing(metadata)
    opts = QuantizeOptions(mean=mean, std=std, color_mode=color, crop=(size, size), original_models_path=str(onnx_path),
                           save_model_path=str(folder / f"vgg19_{kind}.onnx"), data_path=str(calibration),
                           num_runs=min(8, len(images)), quantization_type=kind, channel_quantization=True,
                           output_tensor_names=("logits", "probabilities"))
    return quantize_model(opts).path


def _calibration_folder(images: list[Image.Image], folder: Path) -> Path:
    """Write up to 8 of the bench images as the calibration set of a quantisation."""
    folder.mkdir()
    for i, img in enumerate(images[:8]):
        img.save(folder / f"{i}.png")
    return folder
