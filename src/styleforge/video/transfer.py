"""Stylise a video file with a trained style model, frame batches at a time."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from styleforge.config import VideoOptions
from styleforge.devices import synchronize
from styleforge.errors import StyleforgeError
from styleforge.images.io import long_side_size
from styleforge.transfer.model import StyleModel
from styleforge.transfer.plan import check_video_options
from styleforge.transfer.runtimes import RuntimeChoice
from styleforge.utils.fs import check_output_file
from styleforge.utils.limits import check_pixel_budget
from styleforge.utils.progress import Progress
from styleforge.video.flow import FlowEstimator
from styleforge.video.io import Frame, VideoInfo, VideoReader, VideoWriter, check_video_output, even_size
from styleforge.video.temporal import TemporalSmoother


@dataclass
class VideoResult:
    """What :func:`transfer_video` wrote.

    Attributes:
        target: the output file.
        frames: frames written.
        width, height: output frame size.
        fps: the clip's frame rate (kept in the output).
        processing_fps: frames stylised (and smoothed, encoded) per second of wall time.
        audio: ``copied``, ``re-encoded`` or None (silent clip).
        warping_error_before, warping_error_after: mean warping error of the frame-by-frame
            and of the written frames (0-255 units; None unless smoothing or measuring).
        device: where the network ran.
    """

    target: Path
    frames: int
    width: int
    height: int
    fps: float
    processing_fps: float
    audio: str | None
    warping_error_before: float | None
    warping_error_after: float | None
    device: str


def output_size(width: int, height: int, long_side: int | None) -> tuple[int, int]:
    """The (even) output frame size for a ``width`` x ``height`` clip resized to ``long_side``."""
    if long_side is not None:
        width, height = long_side_size((width, height), long_side)
    return check_pixel_budget(*even_size(width, height), "a video frame")


def planned_megapixels(model: StyleModel, info: VideoInfo) -> float:
    """The megapixels of the frames of a clip described by ``info`` that run whole at the
    model's ``--size`` (math.inf when the frame count is unknown): the job size
    :meth:`~styleforge.transfer.model.StyleModel.prepare` weighs."""
    width, height = output_size(info.width, info.height, model.options.size)
    if model.tile_side(width, height) is not None:
        return 0.0
    return info.frames * width * height / 1e6 if info.frames else math.inf


def prepare_for(model: StyleModel, source: str | os.PathLike[str]) -> RuntimeChoice:
    """Choose ``model``'s runtime for stylising the clip ``source`` (see :func:`planned_megapixels`).

    Raises:
        StyleforgeError: unreadable source, or ``--runtime openvino`` where it cannot run.
    """
    with VideoReader(source) as reader:
        return model.prepare(planned_megapixels(model, reader.info))


def transfer_video(model: StyleModel, source: str | os.PathLike[str], target: str | os.PathLike[str],
                   options: VideoOptions | None = None, progress: bool = True) -> VideoResult:
    """Stylise every frame of ``source`` and write ``target`` with the same timing and audio.

    Frames are resized (``model.options.size``; sides rounded down to even), stylised
    ``model.options.batch_size`` at a time with the model's strength and colour options,
    optionally smoothed over time (``options.temporal_smoothing``), and encoded.

    Raises:
        StyleforgeError: unreadable or undecodable source, unwritable target, bad options.
    """
    opts = check_video_options(options or VideoOptions())
    out = check_output_file(check_video_output(target), "output", [source])
    smoother = None
    if opts.temporal_smoothing > 0 or opts.measure:
        smoother = TemporalSmoother(opts.temporal_smoothing, FlowEstimator(opts.flow_long_side, opts.flow_preset))
    errors: list[tuple[float, float]] = []
    with VideoReader(source) as reader:
        info = reader.info
        model.prepare(planned_megapixels(model, info))
        width, height = output_size(info.width, info.height, model.options.size)
        start, count = time.perf_counter(), 0
        with (VideoWriter(out, reader, width, height, opts.crf) as writer,
              Progress(info.frames or None, "stylising", "frames", enabled=progress) as bar):
            for batch in _batches(reader.frames(), model.options.batch_size):
                inputs = [_resized(frame.pixels, (width, height)) for frame in batch]  # resized once, used twice
                for frame, photo, stylised in zip(batch, inputs, _stylise(model, inputs), strict=True):
                    pixels = stylised
                    if smoother is not None:
                        smoothed = smoother(photo, stylised)
                        pixels = smoothed.pixels
                        if smoothed.error_before is not None:
                            errors.append((smoothed.error_before, smoothed.error_after or 0.0))
                    writer.write(pixels, frame.pts)
                count += len(batch)
                bar.update(len(batch))
                bar.set_postfix(f"{count / (time.perf_counter() - start):.1f} frames/s")
        if count == 0:
            raise StyleforgeError(f"video '{source}' holds no frames")
    seconds = time.perf_counter() - start
    before, after = (float(np.mean(column)) for column in zip(*errors, strict=True)) if errors else (None, None)
    return VideoResult(out, count, width, height, float(info.fps), count / seconds, writer.audio_mode, before, after,
                       model.device_description)


def _batches(frames: Iterator[Frame], size: int) -> Iterator[list[Frame]]:
    batch: list[Frame] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _resized(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``pixels`` at ``size`` = (width, height): cropped by at most one pixel per side to
    make it even, or resized (Lanczos) when ``--size`` asked for another size."""
    height, width = pixels.shape[:2]
    if (width - width % 2, height - height % 2) == size:
        return pixels[: size[1], : size[0]]
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS))


def _stylise(model: StyleModel, frames: list[np.ndarray]) -> list[np.ndarray]:
    """The model's outputs for same-size RGB uint8 frames, as RGB uint8 arrays."""
    images = [Image.fromarray(frame) for frame in frames]
    height, width = frames[0].shape[:2]
    if model.tile_side(width, height) is not None:
        outputs = [model.stylize(img, resize=False) for img in images]
    else:
        outputs = model.stylize_batch(images)
    synchronize(model.device)
    return [np.asarray(img) for img in outputs]
