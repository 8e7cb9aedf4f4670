"""``styleforge stylize CONTENT --style S [--style S2 ...] -o OUT``: Gatys style transfer."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from styleforge.cli.common import (
    add_command,
    add_device_option,
    add_input_paths,
    add_json_option,
    add_power_difference_option,
    add_precision_option,
    check_output_suffix,
    input_paths,
    non_negative_float,
    non_negative_int,
    parse_list,
    positive_float,
    positive_int,
    print_json,
)
from styleforge.config import GatysOptions

DESCRIPTION = """\
Optimisation-based style transfer (Gatys et al.): optimise an image so its VGG19
features match the content image at the content layers and the style images' Gram
matrices at the style layers. Losses use the course's normalisations; default loss
weights depend on the weights' preprocessing convention (torchvision: content 1,
style 500; MatConvNet: content 1, style 0.01). Ctrl-C stops early and still writes the
best image so far.
"""


def register(subparsers: Any) -> None:
    """Add the ``stylize`` command."""
    d = GatysOptions()
    p = add_command(subparsers, "stylize", "optimisation-based (Gatys) style transfer", DESCRIPTION)
    add_input_paths(p, "CONTENT", "content image", many=False)
    p.add_argument("--style", action="append", required=True, metavar="STYLE", help="style image (repeat for several)")
    p.add_argument("--style-blend", default=None, help="comma-separated weights, one per --style (default: equal)")
    p.add_argument("-o", "--output", "--out-path", dest="output", required=True, help="output image (.jpg/.png/.webp/.bmp)")
    p.add_argument("--size", type=positive_int, default=d.size, help="long side of the output in pixels")
    p.add_argument("--iterations", type=positive_int, default=d.iterations, help="optimiser steps (per scale)")
    p.add_argument("--optimizer", default=d.optimizer, choices=("lbfgs", "adam"), help="L-BFGS converges in fewer steps")
    p.add_argument("--lr", type=positive_float, default=d.lr, help="learning rate (default: 1.0 for lbfgs, 0.02 for adam; image in [0,1])")
    p.add_argument("--content-weight", type=non_negative_float, default=d.content_weight, help="alpha (default: per weights convention)")
    p.add_argument("--style-weight", type=non_negative_float, default=d.style_weight, help="beta (default: per weights convention)")
    p.add_argument("--tv-weight", type=non_negative_float, default=d.tv_weight, help="total-variation weight")
    p.add_argument("--content-layers", default=",".join(d.content_layers), help="comma-separated VGG19 layers")
    p.add_argument("--style-layers", default=",".join(d.style_layers), help="comma-separated VGG19 layers")
    p.add_argument("--style-layer-weights", default=None, help="comma-separated, one per style layer (default: equal)")
    p.add_argument("--content-loss", default=d.content_loss, choices=("course", "mse", "sum"), help="content loss normalisation")
    p.add_argument("--style-loss", default=d.style_loss, choices=("course", "johnson", "mse"), help="style loss normalisation")
    p.add_argument("--init", default=d.init, choices=("content", "noise", "style"), help="starting image")
    p.add_argument("--preserve-color", default=None, choices=("luminance", "histogram"), help="keep the content's colours")
    p.add_argument("--scales", default=None, help="coarse-to-fine long sides, e.g. 256,512 (overrides --size)")
    p.add_argument("--style-scale", type=positive_float, default=d.style_scale, help="style image size relative to the output")
    p.add_argument("--pooling", default=d.pooling, choices=("max", "avg"), help="VGG19 pooling layers")
    p.add_argument("--save-every", type=non_negative_int, default=0, help="write OUT_stepNNNNN snapshots every N steps (0 = off)")
    p.add_argument("--log", default=None, metavar="CSV", help="write the loss history as CSV")
    p.add_argument("--plot", default=None, metavar="PNG", help="write the loss curves (.png, .pdf or .svg)")
    p.add_argument("--seed", type=non_negative_int, default=d.seed, help="seed of the noise initialisation")
    p.add_argument("--weights", default=d.weights, help="VGG19 weights: cache name or file")
    p.add_argument("--engine", default=d.engine, choices=("torch", "numpy"), help="torch, or the from-scratch NumPy engine")
    add_precision_option(p, d.precision, "gatys")
    p.add_argument("--fp32-finish", type=non_negative_float, default=d.fp32_finish, metavar="FRACTION",
                   help="with a reduced --precision: run the last FRACTION of each scale's steps in fp32, where "
                        "bf16 rounding would hold L-BFGS back (0 = reduced throughout; default 0.5 with L-BFGS, 0 with Adam)")
    add_power_difference_option(p, "the content, style and TV losses")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    add_device_option(p, d.device)
    add_json_option(p)
    p.set_defaults(handler=run)


def options_from_args(args: argparse.Namespace) -> GatysOptions:
    """Translate parsed arguments into :class:`GatysOptions` (lists parsed, one-line errors)."""
    return GatysOptions(
        size=args.size,
        iterations=args.iterations,
        optimizer=args.optimizer,
        lr=args.lr,
        content_weight=args.content_weight,
        style_weight=args.style_weight,
        tv_weight=args.tv_weight,
        content_layers=parse_list(args.content_layers, "--content-layers"),
        style_layers=parse_list(args.style_layers, "--style-layers"),
        style_layer_weights=parse_list(args.style_layer_weights, "--style-layer-weights", float),
        style_blend=parse_list(args.style_blend, "--style-blend", float),
        content_loss=args.content_loss,
        style_loss=args.style_loss,
        init=args.init,
        preserve_color=args.preserve_color,
        scales=parse_list(args.scales, "--scales", int),
        style_scale=args.style_scale,
        seed=args.seed,
        device=args.device,
        weights=args.weights,
        pooling=args.pooling,
        engine=args.engine,
        power_difference=args.power_difference,
        precision=args.precision,
        fp32_finish=args.fp32_finish,
    )


def check_outputs(args: argparse.Namespace, inputs: list[str]) -> None:
    """Before any work: the output image, log and plot can be written and overwrite no input."""
    from styleforge.utils.fs import check_output_file
    from styleforge.utils.runlog import check_plot_path

    check_output_suffix(args.output)
    check_output_file(args.output, "output", inputs)
    for option, path in (("--log", args.log), ("--plot", args.plot)):
        if path:
            check_output_file(path, option, [*inputs, args.output])
    if args.plot:
        check_plot_path(args.plot)


def run(args: argparse.Namespace) -> int:
    """Stylise, write the output (and snapshots, CSV, plot); 130 after Ctrl-C, 143 after SIGTERM."""
    from styleforge.gatys.driver import run_stylize, snapshot_writer, validate_options
    from styleforge.images.io import encode_image, read_image
    from styleforge.utils.fs import write_together
    from styleforge.utils.interrupts import Terminated

    options = validate_options(options_from_args(args))
    content_path = input_paths(args, "CONTENT", many=False)[0]
    check_outputs(args, [content_path, *args.style])
    content = read_image(content_path)
    styles = [read_image(s) for s in args.style]
    callback = snapshot_writer(args.output, args.save_every) if args.save_every > 0 else None
    result = run_stylize(content, styles, options, callback=callback, progress=not args.quiet)
    # The image, the loss log and the plot appear together or not at all: a log that
    # cannot be written (a full disk) must not leave the image behind an exit status 2.
    outputs = [(args.output, encode_image(result.image, args.output))]
    if args.log:
        outputs.append((args.log, result.history.csv_bytes()))
    if args.plot:
        curves = ("total", "content", "style", "tv")
        outputs.append((args.plot, result.history.plot_bytes(args.plot, curves, title=f"styleforge stylize: {content_path}")))
    write_together(outputs)
    steps = len(result.history.rows)
    final = result.history.rows[-1] if result.history.rows else {}
    summary = {
        "output": args.output,
        "size": list(result.image.size),
        "steps": steps,
        "seconds": round(result.seconds, 3),
        "seconds_per_step": round(result.seconds / max(steps, 1), 4),
        "device": result.device,
        "engine": options.engine,
        "final_losses": {k: final[k] for k in ("total", "content", "style", "tv") if k in final},
        "interrupted": result.interrupted,
    }
    if args.json:
        print_json(summary)
    else:
        losses = ", ".join(f"{k} {v:.4g}" for k, v in summary["final_losses"].items())
        print(f"wrote {args.output} ({result.image.size[0]}x{result.image.size[1]}) after {steps} steps in "
              f"{result.seconds:.1f} s on {result.device} ({options.engine} engine); last losses: {losses}")
    if result.stopped_by is not None:
        how = "terminated" if isinstance(result.stopped_by, Terminated) else "interrupted"
        print(f"styleforge: {how} after {steps} steps; wrote the best image so far to {args.output}", file=sys.stderr)
        return getattr(result.stopped_by, "exit_status", 130)
    return 0
