"""``styleforge export`` (the transform network or the VGG19 classifier to a verified ONNX
file) and ``styleforge quantize`` (INT8/INT16 post-training quantisation from the course's
INI config)."""

from __future__ import annotations

import argparse
from typing import Any

from styleforge.cli.common import add_command, add_json_option, positive_int, print_json
from styleforge.errors import StyleforgeError

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


QUANTIZE_DESCRIPTION = """\
Post-training static quantisation of an exported model, configured by the course's INI
file (fppb_to_intpb.py vgg19_int8.ini): [preprocess] mean, std, color_mode, crop,
calibration; [config] activation_quantization_alg, weight_quantization_alg,
quantization_type, int_op_list, channel_quantization, device_mode, use_convfirst, debug;
[model] input_tensor_names, output_tensor_names, original_models_path, save_model_path;
[data] data_path, batch_size, num_runs. Flags override the file. ONNX Runtime's
quantisation toolkit does the work (QDQ format). Keys and defaults: docs/quantize.md.
"""


BENCH_DESCRIPTION = """\
Time one model on every runtime and compare each with PyTorch fp32: a style model
(--model) as PyTorch fp32 eager, PyTorch's default path, ONNX Runtime fp32, INT8 and
INT16 and OpenVINO INT8 (exported and quantised here, calibrated on the --data images or
the --calibration ones), plus CUDA rows
when a GPU is present, at each --sizes; or the VGG19 classifier of --weights. Latency is
the median of --repeat runs after 2 warm-up runs (the course's 10-run timing loop is
--repeat 10); fidelity is PSNR/SSIM of the stylised --data images, or top-1 agreement
and the largest probability difference for the classifier.
"""


def register(subparsers: Any) -> None:
    """Add the ``export``, ``quantize`` and ``bench`` commands."""
    _register_quantize(subparsers)
    _register_export(subparsers)
    _register_bench(subparsers)


def _register_bench(subparsers: Any) -> None:
    p = add_command(subparsers, "bench", "time a model on every runtime with fidelity against PyTorch fp32", BENCH_DESCRIPTION)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", help="trained style model (.safetensors or checkpoint.pt)")
    what.add_argument("--weights", help="VGG19 weights whose classifier to bench (cache name or file)")
    p.add_argument("--sizes", default="256,512", help="long sides to bench the style model at, comma-separated")
    p.add_argument("--data", default=None, help="images (a folder) to time, calibrate and measure fidelity on "
                                                "(default: the packaged photo)")
    p.add_argument("--calibration", default=None, help="images (a folder) that calibrate INT8/INT16 (default: the --data "
                                                       "images; a separate set measures fidelity out of sample)")
    p.add_argument("--repeat", type=positive_int, default=10, help="timed runs per row")
    p.add_argument("--style", action="append", default=[], dest="styles", metavar="PAINTING",
                   help="for a model that takes any painting (AdaIN, magenta-arbitrary): the style image(s)")
    add_json_option(p)
    p.set_defaults(handler=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    """Run the bench and print one table (or JSON)."""
    from styleforge.cli.common import parse_list
    from styleforge.bench.compare import bench_classifier, bench_images, bench_style
    from styleforge.models.store import resolve_model_file

    sizes = list(parse_list(args.sizes, "--sizes", int) or ()) if args.model else []
    if any(s < 8 for s in sizes):
        raise StyleforgeError("--sizes must be >= 8 pixels")
    if args.model:
        resolve_model_file(args.model)
    calibration = bench_images(args.calibration) if args.calibration else None
    images = bench_images(args.data)  # the packaged photo when None: that import loads PyTorch
    calibration = calibration or images
    if args.model:
        rows = bench_style(args.model, images, sizes, repeat=args.repeat, calibration=calibration, styles=tuple(args.styles))
    else:
        rows = bench_classifier(args.weights, images, repeat=args.repeat, calibration=calibration)
    if args.json:
        print_json([row.as_dict() for row in rows])
        return 0
    _print_rows(rows, style=bool(args.model), images=len(images))
    return 0


def _print_rows(rows: list[Any], style: bool, images: int) -> None:
    print(f"{rows[0].model}: median latency of one image; fidelity against PyTorch fp32 over {images} image(s)")
    header = ("size", "runtime", "ms", "img/s", "PSNR dB", "SSIM") if style else ("size", "runtime", "ms", "img/s", "top-1 agree", "max |dp|")
    table = [header]
    for r in rows:
        quality = (f"{r.psnr_db:.1f}" if r.psnr_db != float("inf") else "inf", f"{r.ssim:.4f}") if style \
            else (f"{r.top1_agreement:.3f}", f"{r.max_prob_diff:.2e}")
        table.append((str(r.size), r.path, f"{r.ms:.1f}", f"{r.images_per_s:.2f}", *quality))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for n, row in enumerate(table):
        print("  ".join(c.ljust(w) if i == 1 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def _register_export(subparsers: Any) -> None:
    p = add_command(subparsers, "export", "export a style model or the VGG19 classifier to ONNX", DESCRIPTION)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", help="trained style model (.safetensors) or training checkpoint (.pt)")
    what.add_argument("--classifier", action="store_true", help="export the VGG19 classifier of --weights")
    p.add_argument("--weights", default="vgg19", help="VGG19 weights for --classifier: cache name or file")
    p.add_argument("--size", type=positive_int, default=224, help="classifier input side (fixed in the graph)")
    p.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    p.add_argument("--power-difference", action="store_true",
                   help="style models: write each instance norm out with one styleforge.PowerDifference node "
                        "(runs on ONNX Runtime with styleforge's kernel)")
    p.add_argument("--style-weights", default=None, metavar="SPEC",
                   help="multi-style models: the style or blend the file holds ('2', 'wave', '0:0.5,wave:0.5'); default style 0")
    add_json_option(p)
    p.set_defaults(handler=run)


def _register_quantize(subparsers: Any) -> None:
    p = add_command(subparsers, "quantize", "quantise an exported ONNX model to INT8/INT16", QUANTIZE_DESCRIPTION)
    p.add_argument("--config", required=True, metavar="FILE.ini", help="the course-style quantisation config")
    p.add_argument("--model", dest="original_models_path", default=None, help="overrides [model] original_models_path")
    p.add_argument("-o", "--output", dest="save_model_path", default=None, help="overrides [model] save_model_path")
    p.add_argument("--data", dest="data_path", default=None, help="overrides [data] data_path")
    p.add_argument("--type", dest="quantization_type", default=None, choices=("int8", "int16"), help="overrides quantization_type")
    p.add_argument("--activation-alg", dest="activation_quantization_alg", default=None, choices=("naive", "threshold_search"),
                   help="overrides activation_quantization_alg")
    p.add_argument("--per-channel", dest="channel_quantization", action="store_const", const=True, default=None,
                   help="overrides channel_quantization with True")
    p.add_argument("--batch-size", type=positive_int, default=None, help="overrides [data] batch_size")
    p.add_argument("--num-runs", type=positive_int, default=None, help="overrides [data] num_runs")
    p.add_argument("--debug", action="store_const", const=True, default=None, help="overrides debug with True")
    add_json_option(p)
    p.set_defaults(handler=run_quantize)


def run_quantize(args: argparse.Namespace) -> int:
    """Quantise as the config says; print what was written."""
    from styleforge.deploy.quantize import quantize_model
    from styleforge.deploy.quantize_config import read_quantize_config

    keys = ("original_models_path", "save_model_path", "data_path", "quantization_type", "activation_quantization_alg",
            "channel_quantization", "batch_size", "num_runs", "debug")
    overrides = {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
    opts = read_quantize_config(args.config, overrides)
    report = quantize_model(opts)
    if args.json:
        print_json({"output": str(report.path), "quantize_nodes": report.quantized_nodes,
                    "calibration_images": report.calibration_images, "ranges": str(report.ranges_path) if report.ranges_path else None})
        return 0
    print(f"wrote {report.path}: {opts.quantization_type}, {report.quantized_nodes} quantised tensors, "
          f"{'per-channel' if opts.channel_quantization else 'per-tensor'} weights, activations by "
          f"{opts.activation_quantization_alg}, calibrated on {report.calibration_images} image(s)")
    if report.ranges_path:
        print(f"calibration ranges: {report.ranges_path}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Export, print the verification and the written file."""
    from styleforge.deploy.export_plan import onnx_target
    from styleforge.models.store import resolve_model_file

    if args.classifier and args.power_difference:
        raise StyleforgeError("--power-difference applies to style models (their instance norms); VGG19 has none")
    onnx_target(args.output, [args.model] if args.model else None)
    if args.model:
        resolve_model_file(args.model)
    from styleforge.deploy.export import export_classifier, export_style_model

    if args.model:
        report = export_style_model(args.model, args.output, power_difference=args.power_difference,
                                    style_weights=args.style_weights)
    else:
        report = export_classifier(args.weights, args.output, size=args.size)
    if args.json:
        print_json({"output": str(report.path), "kind": report.kind, "bytes": report.size_bytes,
                    "tolerance": report.tolerance, "checks": [{"check": c, "max_abs_diff": d} for c, d in report.checks]})
        return 0
    unit = "grey levels" if report.kind in ("style model", "AdaIN model") else ""
    for check, diff in report.checks:
        print(f"  onnxruntime vs pytorch, {check}: max |diff| {diff:.2e} {'' if 'statistics' in check else unit}".rstrip())
    print(f"wrote {report.path} ({report.kind}, {report.size_bytes / 1e6:.1f} MB); "
          f"largest difference {report.max_difference:.2e} <= {report.tolerance:g}")
    return 0
