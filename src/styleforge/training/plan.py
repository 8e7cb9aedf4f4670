"""What a training run needs, checked before PyTorch is imported.

Option values, the photo folders, the output folder, the VGG19 weights, the checkpoint
``--resume`` continues from and the model ``--extend`` adds to are checked here without
PyTorch (about 3 s to import on a small machine), so ``train``, ``train-adain`` and
``check-data`` refuse a bad value or a missing file at once; the training functions run
the same checks for callers of the Python API.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from styleforge.config import NORMS, PRECISION_CHOICES, UPSAMPLES, AdaINTrainOptions, TrainOptions, is_finite
from styleforge.errors import StyleforgeError
from styleforge.images.io import find_images, read_image
from styleforge.models.store import resolve_model_file
from styleforge.utils.fs import check_output_dir
from styleforge.utils.limits import ADAIN_MIN_SIDE, check_pixel_budget
from styleforge.vgg.architecture import check_feature_layers, min_input_side
from styleforge.vgg.weights.store import weights_file

#: The training checkpoint's file name inside the output folder.
CHECKPOINT_NAME = "checkpoint.pt"


def validate_train_options(opts: TrainOptions) -> TrainOptions:
    """Check option values; returns them or raises StyleforgeError."""
    check_feature_layers((opts.content_layer, *opts.style_layers))
    check_loop_options(opts, min_input_side((opts.content_layer, *opts.style_layers)))
    weights = (opts.content_weight, opts.style_weight, opts.tv_weight)
    checks = [
        (all(is_finite(w) and (w is None or w >= 0) for w in weights), "content, style and tv weights must be finite numbers >= 0"),
        (opts.style_size is None or opts.style_size >= 1, "style size must be >= 1"),
        (opts.norm in NORMS, f"unknown norm {opts.norm!r}"),
        (opts.upsample in UPSAMPLES, f"unknown upsample {opts.upsample!r}"),
    ]
    for ok, message in checks:
        if not ok:
            raise StyleforgeError(message)
    if opts.style_size is not None:
        check_pixel_budget(opts.style_size, opts.style_size, f"--style-size {opts.style_size}")
    return opts


def validate_adain_options(opts: AdaINTrainOptions) -> AdaINTrainOptions:
    """Check AdaIN training option values; returns them or raises a one-line StyleforgeError."""
    check_loop_options(opts, ADAIN_MIN_SIDE)
    if not all(is_finite(w) and w >= 0 for w in (opts.content_weight, opts.style_weight, opts.lr_decay)):
        raise StyleforgeError("content weight, style weight and lr decay must be finite numbers >= 0")
    return opts


def check_run_paths(out_dir: str | os.PathLike[str], folders: list[str | os.PathLike[str]], weights: str,
                    resume: bool = False, extend: str | os.PathLike[str] | None = None) -> None:
    """Check what a training run reads and writes: the output folder can be written,
    each image folder holds images, the VGG19 weights exist (file or cache name),
    ``--resume`` has a checkpoint to continue from and ``--extend`` names a model file
    (or installed model). Raises StyleforgeError."""
    check_output_dir(out_dir, "output folder")
    for folder in folders:
        photo_files(folder)
    weights_file(weights)
    if resume:
        resume_checkpoint(out_dir)
    if extend is not None:
        resolve_model_file(extend)


def resume_checkpoint(out_dir: str | os.PathLike[str]) -> Path:
    """``out_dir/checkpoint.pt``, the file ``--resume`` continues from.

    Raises:
        StyleforgeError: there is no such file.
    """
    path = Path(out_dir) / CHECKPOINT_NAME
    if not path.is_file():
        raise StyleforgeError(f"--resume: no checkpoint at '{path}'")
    return path


def check_loop_options(opts: Any, min_image_size: int) -> None:
    """Check the options every training run has (epochs, batch, size, lr, seed, steps,
    workers, logging, checkpoints, precision); raises a one-line StyleforgeError."""
    checks = [
        (opts.epochs >= 1 and opts.batch_size >= 1, "epochs and batch size must be >= 1"),
        (opts.image_size >= min_image_size, f"image size must be >= {min_image_size} for the layers used"),
        (is_finite(opts.lr) and opts.lr > 0, "lr must be a finite number > 0"),
        (opts.seed >= 0, "seed must be >= 0"),
        (opts.max_steps is None or opts.max_steps >= 1, "max steps must be >= 1"),
        (opts.workers >= 0 and opts.log_every >= 1 and opts.checkpoint_every >= 0, "workers >= 0, log-every >= 1, checkpoint-every >= 0"),
        (opts.precision in ("auto", *PRECISION_CHOICES), f"unknown precision {opts.precision!r}"),
    ]
    for ok, message in checks:
        if not ok:
            raise StyleforgeError(message)
    check_pixel_budget(opts.image_size, opts.image_size, f"--image-size {opts.image_size}")


def photo_files(root: str | os.PathLike[str]) -> list[Path]:
    """Every image file under the training folder ``root`` (recursively, sorted).

    Raises:
        StyleforgeError: ``root`` is not a folder, or holds no image files.
    """
    folder = Path(root)
    if not folder.is_dir():
        raise StyleforgeError(f"data folder '{folder}' does not exist or is not a folder")
    files = find_images(folder)
    if not files:
        raise StyleforgeError(f"data folder '{folder}' holds no .jpg/.jpeg/.png/.webp/.bmp images")
    return files


@dataclass
class DataReport:
    """Result of :func:`check_data`: readable count and the unreadable files with reasons."""

    good: int
    bad: list[tuple[Path, str]]


def check_data(folder: str | os.PathLike[str], workers: int | None = None) -> DataReport:
    """Try to read every image under ``folder`` (in parallel); report the unreadable ones.

    Raises:
        StyleforgeError: the folder is missing or holds no image files.
    """
    from concurrent.futures import ThreadPoolExecutor

    files = photo_files(folder)
    with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 1) * 2)) as pool:
        reasons = list(pool.map(_read_problem, files))
    bad = [(f, r) for f, r in zip(files, reasons, strict=True) if r is not None]
    return DataReport(len(files) - len(bad), bad)


def _read_problem(path: Path) -> str | None:
    try:
        read_image(path)
    except StyleforgeError as exc:
        return str(exc).split(": ", 1)[-1]
    return None
