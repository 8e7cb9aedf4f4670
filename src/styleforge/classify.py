"""Classify image files with VGG19 and time it (the API behind ``styleforge classify``).

Images are read and preprocessed once; each of the ``repeat`` runs then pushes every
batch through the network, timed with the device synchronised. Run 1 includes one-off
costs (allocator warm-up, CUDA context and kernel selection), so it is reported apart
from the steady-state runs, as in the course's timing loop.

The inference path is PyTorch eager in ``torch.inference_mode`` with the network and
the input in ``channels_last`` memory format, fp32 by default or under bf16/fp16
autocast (``precision``); see ``benchmarks/classify.py`` for how each compares with
the plain eager fp32 path in speed and probabilities.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, field

import torch

from styleforge.config import ClassifyOptions
from styleforge.devices import autocast, describe_device, resolve_device, synchronize
from styleforge.errors import StyleforgeError
from styleforge.images import read_images
from styleforge.vgg import VGG19, Prediction, load_vgg19


@dataclass
class ClassifyReport:
    """Results of :func:`classify_files`.

    Attributes:
        paths: the input files, in order.
        predictions: per file, the top-k predictions, best first.
        device: a description of the device used.
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
    vgg: VGG19 | None = None,
) -> ClassifyReport:
    """Classify image files, ``options.repeat`` times, and report predictions and timings.

    Args:
        paths: image files (any supported format; see :mod:`styleforge.images`).
        options: classification options (defaults: :class:`ClassifyOptions`).
        vgg: an already loaded network; default: load ``options.weights``.

    Returns:
        A :class:`ClassifyReport`.
    """
    opts = options or ClassifyOptions()
    if not paths:
        raise StyleforgeError("no images given")
    if opts.top_k < 1 or opts.batch_size < 1 or opts.repeat < 1 or opts.size < 32:
        raise StyleforgeError("--top-k, --batch-size and --repeat must be >= 1, and --size >= 32")
    device = resolve_device(opts.device)
    precision = autocast(device, opts.precision)
    images = read_images(paths)
    model = vgg if vgg is not None else load_vgg19(opts.weights, device=device)
    model = model.to(device=device, memory_format=torch.channels_last)
    batches = [
        model.preprocess(images[i : i + opts.batch_size], size=opts.size).contiguous(memory_format=torch.channels_last)
        for i in range(0, len(images), opts.batch_size)
    ]
    run_seconds = []
    probs = torch.empty(0)
    for _ in range(opts.repeat):
        synchronize(device)
        start = time.perf_counter()
        with precision:
            probs = torch.cat([model.probabilities(batch) for batch in batches])
        synchronize(device)
        run_seconds.append(time.perf_counter() - start)
    return ClassifyReport(
        paths=[os.fspath(p) for p in paths],
        predictions=model.top_predictions(probs, opts.top_k),
        device=describe_device(device),
        weights=f"{opts.weights if vgg is None else 'given model'} ({model.convention.name} convention)",
        precision=opts.precision,
        batch_size=opts.batch_size,
        run_seconds=run_seconds,
    )
