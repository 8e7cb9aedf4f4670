"""Classify image files with VGG19 and time it (the API behind ``styleforge classify``).

Images are read and preprocessed once; each of the ``repeat`` runs then pushes every
batch through the network, timed with the device synchronised. Run 1 includes one-off
costs (allocator warm-up, CUDA context and kernel selection), so it is reported apart
from the steady-state runs, as in the course's timing loop (its ``for i in range(10)``
is ``repeat=10``).

Two engines, as the course compares them (section 4.1.7: accuracy and speed of the
from-scratch network against the framework):

* ``torch``: PyTorch eager in ``torch.inference_mode`` with the network and the input in
  ``channels_last`` memory format, fp32 by default or under bf16/fp16 autocast
  (``precision``); see ``benchmarks/classify.py``;
* ``numpy``: the from-scratch NumPy VGG19 (:mod:`styleforge.numpy_engine`), fp32 on the
  CPU, same weights, same preprocessing, same top-k; PyTorch is not imported.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from styleforge.config import ClassifyOptions
from styleforge.errors import StyleforgeError
from styleforge.images.io import read_images
from styleforge.utils.limits import check_pixel_budget
from styleforge.vgg.classes import Prediction
from styleforge.vgg.weights.store import weights_file

ENGINES = ("torch", "numpy")


@dataclass
class ClassifyReport:
    """Results of :func:`classify_files`.

    Attributes:
        paths: the input files, in order.
        predictions: per file, the top-k predictions, best first.
        device: a description of the device used.
        engine: ``torch``, ``numpy`` or ``onnxruntime`` (an exported classifier).
        weights: the weights source and its preprocessing convention.
        batch_size: images per forward pass.
        precision: fp32, bf16 or fp16.
        run_seconds: wall-clock seconds of each run over all images (run 1 = warm-up).
    """

    paths: list[str]
    predictions: list[list[Prediction]]
    device: str
    weights: str
    batch_size: int
    precision: str = "fp32"
    engine: str = "torch"
    run_seconds: list[float] = field(default_factory=list)

    def latency(self) -> dict[str, float] | None:
        """Return steady-state latency figures (ms) over runs 2..N, or None for one run."""
        steady = self.run_seconds[1:]
        if not steady:
            return None
        n_images = len(self.paths)
        return {
            "warmup_ms": 1000 * self.run_seconds[0],
            "mean_ms": 1000 * statistics.fmean(steady),
            "median_ms": 1000 * statistics.median(steady),
            "min_ms": 1000 * min(steady),
            "per_image_ms": 1000 * statistics.median(steady) / n_images,
            "images_per_s": n_images / statistics.median(steady),
        }

    def to_dict(self) -> dict:
        """Return a JSON-serialisable dict (the ``--json`` output)."""
        return {
            "engine": self.engine,
            "device": self.device,
            "weights": self.weights,
            "batch_size": self.batch_size,
            "precision": self.precision,
            "images": [
                {"path": path, "top_k": [p._asdict() for p in preds]}
                for path, preds in zip(self.paths, self.predictions, strict=True)
            ],
            "run_ms": [1000 * s for s in self.run_seconds],
            "latency": self.latency(),
        }


def classify_files(
    paths: list[str | os.PathLike[str]],
    options: ClassifyOptions | None = None,
    vgg: object | None = None,
) -> ClassifyReport:
    """Classify image files, ``options.repeat`` times, and report predictions and timings.

    Args:
        paths: image files (any supported format; see :mod:`styleforge.images.io`).
        options: classification options (defaults: :class:`ClassifyOptions`).
        vgg: an already loaded network for ``options.engine`` (a :class:`styleforge.vgg.network.VGG19`
            or a :class:`styleforge.numpy_engine.VGG19`); default: load ``options.weights``.

    Returns:
        A :class:`ClassifyReport`.
    """
    opts = _validated(options or ClassifyOptions(), paths)
    if vgg is None and not _is_onnx(opts.weights):
        weights_file(opts.weights)  # a missing file or name is reported before PyTorch is imported
    images = read_images(paths)
    runner = _runner_for(opts, vgg)
    batches = [runner.prepare(images[i : i + opts.batch_size]) for i in range(0, len(images), opts.batch_size)]
    run_seconds = []
    probs = np.empty(0)
    for _ in range(opts.repeat):
        runner.synchronize()
        start = time.perf_counter()
        probs = np.concatenate([runner.probabilities(batch) for batch in batches])
        runner.synchronize()
        run_seconds.append(time.perf_counter() - start)
    return ClassifyReport(
        paths=[os.fspath(p) for p in paths],
        predictions=runner.top_predictions(probs, opts.top_k),
        device=runner.device,
        weights=f"{opts.weights if vgg is None else 'given model'} ({runner.convention} convention)",
        precision=opts.precision,
        batch_size=opts.batch_size,
        engine=runner.engine,
        run_seconds=run_seconds,
    )


@dataclass
class _Runner:
    """One engine's classification steps: prepare a batch once, then compute
    probabilities (as NumPy) as many times as timed."""

    engine: str
    device: str
    convention: str
    prepare: Callable[[list], object]
    probabilities: Callable[[object], np.ndarray]
    top_predictions: Callable[[np.ndarray, int], list[list[Prediction]]]
    synchronize: Callable[[], None] = lambda: None


def _validated(opts: ClassifyOptions, paths: list) -> ClassifyOptions:
    if not paths:
        raise StyleforgeError("no images given")
    if opts.top_k < 1 or opts.batch_size < 1 or opts.repeat < 1 or opts.size < 32:
        raise StyleforgeError("--top-k, --batch-size and --repeat must be >= 1, and --size >= 32")
    check_pixel_budget(opts.size, opts.size, f"--size {opts.size}")
    if opts.engine not in ENGINES:
        raise StyleforgeError(f"unknown engine {opts.engine!r}; use one of {', '.join(ENGINES)}")
    if opts.engine == "numpy" and opts.precision != "fp32":
        raise StyleforgeError("the NumPy engine computes in fp32 only: drop --precision or use --engine torch")
    if opts.engine == "numpy" and opts.device not in ("auto", "cpu"):
        raise StyleforgeError("the NumPy engine runs on the CPU: use --device cpu or auto")
    return opts


def _is_onnx(weights: str | os.PathLike[str]) -> bool:
    """Whether ``--weights`` names an exported ONNX classifier (run by ONNX Runtime)."""
    return os.fspath(weights).lower().endswith(".onnx")


def _runner_for(opts: ClassifyOptions, vgg: object | None) -> _Runner:
    """The runner for the engine, or ONNX Runtime for an exported ``.onnx`` classifier."""
    from styleforge.vgg.onnx_classifier import OnnxClassifier

    if isinstance(vgg, OnnxClassifier) or (vgg is None and _is_onnx(opts.weights)):
        return _onnx_runner(opts, vgg)
    return _numpy_runner(opts, vgg) if opts.engine == "numpy" else _torch_runner(opts, vgg)


def _onnx_runner(opts: ClassifyOptions, vgg: object | None) -> _Runner:
    from styleforge.vgg.onnx_classifier import OnnxClassifier

    if opts.engine != "torch" or opts.precision != "fp32":
        raise StyleforgeError("an ONNX classifier runs as exported (ONNX Runtime or OpenVINO): drop --engine and --precision")
    model = vgg if vgg is not None else OnnxClassifier(opts.weights, opts.device, opts.runtime)
    return _Runner(
        engine=model.session.runtime,
        device=model.device_description,
        convention=model.convention.name,
        prepare=lambda images: model.preprocess(images, size=opts.size),
        probabilities=model.probabilities,
        top_predictions=model.top_predictions,
    )


def _torch_runner(opts: ClassifyOptions, vgg: object | None) -> _Runner:
    import torch

    from styleforge.devices import autocast, describe_device, resolve_device, synchronize
    from styleforge.vgg.network import VGG19, load_vgg19

    device = resolve_device(opts.device)
    precision = autocast(device, opts.precision)  # refuses an unsupported precision before any loading
    model = vgg if vgg is not None else load_vgg19(opts.weights, device=device)
    if not isinstance(model, VGG19):
        raise StyleforgeError("engine 'torch' needs a styleforge.vgg.network.VGG19 (see sf.load_vgg19)")
    model = model.to(device=device, memory_format=torch.channels_last)

    def probabilities(batch: object) -> np.ndarray:
        with precision:
            return model.probabilities(batch).cpu().numpy()

    return _Runner(
        engine="torch",
        device=describe_device(device),
        convention=model.convention.name,
        prepare=lambda images: model.preprocess(images, size=opts.size).contiguous(memory_format=torch.channels_last),
        probabilities=probabilities,
        top_predictions=lambda probs, k: model.top_predictions(torch.from_numpy(probs), k),
        synchronize=lambda: synchronize(device),
    )


def _numpy_runner(opts: ClassifyOptions, vgg: object | None) -> _Runner:
    from styleforge.numpy_engine import VGG19

    model = vgg if vgg is not None else VGG19.load(opts.weights)
    if not isinstance(model, VGG19):
        raise StyleforgeError("engine 'numpy' needs a styleforge.numpy_engine.VGG19 (or none, to load the weights)")
    return _Runner(
        engine="numpy",
        device="cpu",
        convention=model.convention.name,
        prepare=lambda images: model.preprocess(images, size=opts.size),
        probabilities=model.probabilities,
        top_predictions=model.top_predictions,
    )
