"""What a ``transfer`` run will read and write, decided before any network is loaded.

Option values, the model file, and the mapping of input files and folders to outputs
are checked here, with no PyTorch import (about 3 s on a small machine), so a mistyped
path or a bad value is refused at once: the command line validates with this module
first and only then imports :mod:`styleforge.transfer.model`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from styleforge.config import (
    STRENGTH_MODES,
    TRANSFER_PRECISION_CHOICES,
    TRANSFER_RUNTIME_CHOICES,
    TransferOptions,
    VideoOptions,
    is_finite,
)
from styleforge.errors import StyleforgeError
from styleforge.images.color import check_mode as check_color_mode
from styleforge.images.io import IMAGE_SUFFIXES, WRITE_FORMATS, find_images
from styleforge.utils.fs import check_output_dir, check_output_file, check_regular_file
from styleforge.utils.limits import ADAIN_MIN_SIDE, check_pixel_budget


def validate_transfer_options(opts: TransferOptions) -> TransferOptions:
    """Check option values; returns them or raises a one-line StyleforgeError."""
    checks = [
        (opts.size is None or opts.size >= 1, "size must be >= 1"),
        (opts.tile is None or opts.tile >= 16, "tile must be >= 16 pixels"),
        (opts.tile_overlap >= 0, "tile overlap must be >= 0"),
        (opts.batch_size >= 1, "batch size must be >= 1"),
        (opts.auto_tile_pixels >= 1 and opts.stats_pixels >= 1, "auto-tile and statistics pixel counts must be >= 1"),
        (opts.precision in ("auto", *TRANSFER_PRECISION_CHOICES), f"unknown precision {opts.precision!r}"),
        (opts.runtime in TRANSFER_RUNTIME_CHOICES,
         f"unknown runtime {opts.runtime!r}; use one of {', '.join(TRANSFER_RUNTIME_CHOICES)}"),
        (not (opts.runtime == "openvino" and opts.compile),
         "--compile and --runtime openvino are two compilers of the same network: give one of them"),
        (not (opts.runtime == "openvino" and opts.device.startswith("cuda")),
         "--runtime openvino runs on the CPU; with --device cuda use --runtime pytorch (or auto)"),
        *_int8_checks(opts),
        (is_finite(opts.strength) and 0.0 <= opts.strength <= 1.0, f"strength must be from 0 to 1, got {opts.strength}"),
        (opts.strength_mode in STRENGTH_MODES, f"unknown strength mode {opts.strength_mode!r}; use one of {', '.join(STRENGTH_MODES)}"),
        (is_finite(opts.alpha) and 0.0 <= opts.alpha <= 1.0, f"alpha must be from 0 to 1, got {opts.alpha}"),
        (opts.style_size >= ADAIN_MIN_SIDE, f"style size must be >= {ADAIN_MIN_SIDE} pixels"),
    ]
    for ok, message in checks:
        if not ok:
            raise StyleforgeError(message)
    check_color_mode(opts.preserve_color)
    if opts.size is not None:
        check_pixel_budget(opts.size, opts.size, f"--size {opts.size}")
    for style in opts.styles:  # an AdaIN model's style images (their contents are read with the model)
        check_regular_file(style, "image")
    return opts


def _int8_checks(opts: TransferOptions) -> list[tuple[bool, str]]:
    """The options ``--precision int8`` (an INT8 copy run by OpenVINO or ONNX Runtime) excludes."""
    if opts.precision != "int8":
        return []
    return [
        (opts.runtime != "pytorch", "--precision int8 runs an INT8 copy of the model in OpenVINO or ONNX Runtime; drop "
                                    "--runtime pytorch (or use --precision fp32 or bf16)"),
        (not opts.compile, "--compile compiles the PyTorch network, and --precision int8 runs an INT8 copy in OpenVINO "
                           "or ONNX Runtime: give one of them"),
        (not opts.device.startswith("cuda"), "--precision int8 runs on the CPU; with --device cuda use --precision fp16 "
                                             "(or auto)"),
        (not opts.power_difference, "--power-difference: the INT8 copy runs in OpenVINO, which has no PowerDifference "
                                    "kernel; drop one of them"),
        (opts.strength_mode != "norm", "--strength-mode norm changes the network's parameters, which the INT8 copy "
                                       "fixes; use --strength-mode pixel with --precision int8"),
    ]


def check_video_options(opts: VideoOptions) -> VideoOptions:
    """Check option values; returns them or raises a one-line StyleforgeError."""
    if not 0.0 <= opts.temporal_smoothing < 1.0:
        raise StyleforgeError(f"temporal smoothing must be from 0 to below 1, got {opts.temporal_smoothing}")
    if opts.flow_long_side < 16:
        raise StyleforgeError(f"the flow's long side must be >= 16 pixels, got {opts.flow_long_side}")
    if opts.flow_preset not in ("fast", "medium"):
        raise StyleforgeError(f"unknown flow preset {opts.flow_preset!r}; use fast or medium")
    if not 0 <= opts.crf <= 51:
        raise StyleforgeError(f"crf must be from 0 to 51, got {opts.crf}")
    return opts


@dataclass
class TransferItem:
    """One input file and where its result goes."""

    source: Path
    target: Path


def plan_outputs(inputs: list[str | os.PathLike[str]], output: str | os.PathLike[str]) -> list[TransferItem]:
    """Map input files and folders to output paths.

    One input file with an image-suffixed output writes exactly there. Otherwise the
    output is a folder: files keep their names, and a folder's images keep their paths
    relative to it, under a subfolder named after it.
    """
    out = Path(output)
    sources = [Path(p) for p in inputs]
    for source in sources:
        if not source.exists():
            raise StyleforgeError(f"cannot read image '{source}': no such file or folder")
        if not source.is_dir():
            check_regular_file(source, "image")
    if len(sources) == 1 and sources[0].is_file() and out.suffix.lower() in WRITE_FORMATS:
        check_output_file(out, "output", sources)
        return [TransferItem(sources[0], out)]
    if out.suffix.lower() in IMAGE_SUFFIXES and not (len(sources) == 1 and sources[0].is_file()):
        raise StyleforgeError(f"output '{out}' looks like a file, but several images or a folder were given: use a folder")
    _check_folder_name(output)
    check_output_dir(out, "output folder")
    _check_outside_inputs(out, sources)
    items = _items_for(sources, out)
    _check_targets(items)
    return items


def _check_folder_name(output: str | os.PathLike[str]) -> None:
    """Refuse an output that names a file of a format no writer handles (``-o out.xyz``
    would otherwise become a folder of that name). A folder with a dot in its name is
    given with a trailing slash, or exists already."""
    text, out = os.fspath(output), Path(output)
    if out.suffix and not out.is_dir() and not text.endswith(("/", os.sep)):
        raise StyleforgeError(f"output '{out}' ends in '{out.suffix}', which is not an image format styleforge writes "
                              f"({', '.join(sorted(WRITE_FORMATS))}); name a file with one of those, or a folder "
                              f"('{out}/' if the dot is meant)")


def _check_outside_inputs(out: Path, sources: list[Path]) -> None:
    """Refuse an output folder that is an input folder or inside one: the next run over
    that folder would stylise the results again (and write them deeper each time)."""
    where = Path(os.path.realpath(out))
    for source in (s for s in sources if s.is_dir()):
        folder = Path(os.path.realpath(source))
        if where == folder or folder in where.parents:
            raise StyleforgeError(f"output folder '{out}' is inside the input folder '{source}': a later run over "
                                  f"'{source}' would take the results as inputs; write them to another folder")


def _items_for(sources: list[Path], out: Path) -> list[TransferItem]:
    items = []
    for source in sources:
        if source.is_dir():
            found = find_images(source)
            if not found:
                raise StyleforgeError(f"folder '{source}' holds no images")
            items += [TransferItem(f, out / source.name / f.relative_to(source)) for f in found]
        else:
            items.append(TransferItem(source, out / source.name))
    return items


def _check_targets(items: list[TransferItem]) -> None:
    """No two inputs may write the same file, and no output may replace an input."""
    sources = {os.path.realpath(item.source) for item in items}
    claimed: dict[str, Path] = {}
    for item in items:
        target = os.path.realpath(item.target)
        if target in claimed:
            raise StyleforgeError(f"'{claimed[target]}' and '{item.source}' would both be written to '{item.target}': "
                                  "give inputs with different names, or run them with different -o folders")
        if target in sources:
            raise StyleforgeError(f"output '{item.target}' is also an input; choose another -o so the input is kept")
        claimed[target] = item.source
