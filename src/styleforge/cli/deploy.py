"""``styleforge export``: the transform network or the VGG19 classifier to a verified ONNX file."""

from __future__ import annotations

import argparse
from typing import Any

from styleforge.cli.common import add_command, add_json_option, positive_int, print_json

DESCRIPTION = """\
Export a trained style model (.safetensors or a training checkpoint) or the VGG19
classifier of some weights to one self-contained ONNX file, with the preprocessing
convention, class names, style and options in its metadata. Style models take RGB
0-255 images of any batch, height and width (>= 5 pixels; styleforge pads smaller ones);
the classifier takes a batch of S x S images already in the weights' convention and
gives 'logits' and 'probabilities'. The file is checked against PyTorch with ONNX
Runtime (a photo, odd sizes, batches); a mismatch fails the command and writes nothing.
'transfer --model M.onnx' and 'classify --weights vgg19.onnx' run the exported files.
"""


def register(subparsers: Any) -> None:
    """Add the ``export`` command."""
    p = add_command(subparsers, "export", "export a style model or the VGG19 classifier to ONNX", DESCRIPTION)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", help="trained style model (.safetensors) or training checkpoint (.pt)")
    what.add_argument("--classifier", action="store_true", help="export the VGG19 classifier of --weights")
    p.add_argument("--weights", default="vgg19", help="VGG19 weights for --classifier: cache name or file")
    p.add_argument("--size", type=positive_int, default=224, help="classifier input side (fixed in the graph)")
    p.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    add_json_option(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Export, print the verification and the written file."""
    from styleforge.deploy.export import export_classifier, export_style_model

    if args.model:
        report = export_style_model(args.model, args.output)
    else:
        report = export_classifier(args.weights, args.output, size=args.size)
    if args.json:
        print_json({"output": str(report.path), "kind": report.kind, "bytes": report.size_bytes,
                    "tolerance": report.tolerance, "checks": [{"check": c, "max_abs_diff": d} for c, d in report.checks]})
        return 0
    unit = "grey levels" if report.kind == "style model" else ""
    for check, diff in report.checks:
        print(f"  onnxruntime vs pytorch, {check}: max |diff| {diff:.2e} {unit}".rstrip())
    print(f"wrote {report.path} ({report.kind}, {report.size_bytes / 1e6:.1f} MB); "
          f"largest difference {report.max_difference:.2e} <= {report.tolerance:g}")
    return 0
