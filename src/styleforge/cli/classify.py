"""``styleforge classify IMAGE... [--weights] [--top-k] [--device] [--repeat] [--json]``."""

from __future__ import annotations

import argparse
from typing import Any

from styleforge.cli.common import (
    add_command,
    add_device_option,
    add_json_option,
    add_runtime_option,
    positive_int,
    print_json,
)
from styleforge.config import PRECISION_CHOICES, ClassifyOptions

DESCRIPTION = """\
Classify images with VGG19 (ImageNet-1k). Each image is resized and cropped to the
network input following the weights' convention (torchvision: shorter side to 256,
centre crop 224; MatConvNet: resized straight to 224x224), then normalised the same way.
With --repeat N the whole batch runs N times and the latency of each run is printed,
run 1 (warm-up) apart; the course's 10-run timing loop is --repeat 10. --engine numpy
runs the from-scratch NumPy VGG19 (CPU, fp32) on the same weights, to compare accuracy
and speed with PyTorch as the course does.
"""


def register(subparsers: Any) -> None:
    """Add the ``classify`` command."""
    defaults = ClassifyOptions()
    parser = add_command(subparsers, "classify", "classify images with VGG19", DESCRIPTION)
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="JPEG/PNG/WebP/BMP files")
    parser.add_argument("--weights", default=defaults.weights, help="cache name or .pth/.mat/.safetensors path")
    parser.add_argument("--top-k", type=positive_int, default=defaults.top_k, help="classes to show per image")
    parser.add_argument("--batch-size", type=positive_int, default=defaults.batch_size, help="images per forward pass")
    parser.add_argument("--size", type=positive_int, default=defaults.size, help="network input side in pixels")
    parser.add_argument("--repeat", type=positive_int, default=defaults.repeat, help="timed runs (first = warm-up)")
    parser.add_argument("--precision", default=defaults.precision, choices=PRECISION_CHOICES,
                        help="fp32 is exact; bf16 (CPUs with AVX512-BF16/AMX, CUDA) and fp16 (CUDA) are faster")
    parser.add_argument("--engine", default=defaults.engine, choices=("torch", "numpy"),
                        help="torch, or the from-scratch NumPy VGG19 (CPU, fp32)")
    add_device_option(parser, defaults.device)
    add_runtime_option(parser, defaults.runtime)
    add_json_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Classify, then print predictions (and timings) as text or JSON."""
    from styleforge.classify import classify_files

    options = ClassifyOptions(
        weights=args.weights,
        top_k=args.top_k,
        size=args.size,
        batch_size=args.batch_size,
        device=args.device,
        repeat=args.repeat,
        precision=args.precision,
        engine=args.engine,
        runtime=args.runtime,
    )
    report = classify_files(args.images, options)
    if args.json:
        print_json(report.to_dict())
        return 0
    print(f"{report.engine} engine on {report.device}; weights: {report.weights}; batch size {report.batch_size}; {report.precision}")
    for path, predictions in zip(report.paths, report.predictions, strict=True):
        print(path)
        for rank, p in enumerate(predictions, start=1):
            print(f"  {rank}. {p.class_id:>4}  {p.probability:7.4f}  {p.class_name}")
    _print_timings(report)
    return 0


def _print_timings(report: Any) -> None:
    latency, n_images = report.latency(), len(report.paths)
    if latency is None:
        return
    print(f"timing: {report.engine} engine, {report.device}, {report.precision}, "
          f"{n_images} image{'s' if n_images > 1 else ''} per run:")
    for i, seconds in enumerate(report.run_seconds, start=1):
        label = "run 1 (warm-up)" if i == 1 else f"run {i}"
        print(f"  {label}: {1000 * seconds:.1f} ms")
    print(
        f"  runs 2-{len(report.run_seconds)}: mean {latency['mean_ms']:.1f} ms, median {latency['median_ms']:.1f} ms, "
        f"min {latency['min_ms']:.1f} ms; {latency['per_image_ms']:.1f} ms per image, "
        f"{latency['images_per_s']:.1f} images/s"
    )
