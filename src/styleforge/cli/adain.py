"""``train-adain``: train the decoder of an arbitrary-style (AdaIN) model. Its transfer is
``styleforge transfer --model adain.safetensors --style PAINTING ...``."""

from __future__ import annotations

import argparse
import os
from typing import Any

from styleforge.cli.common import (
    add_command,
    add_device_option,
    add_precision_option,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)
from styleforge.config import AdaINTrainOptions

DESCRIPTION = """\
Train an arbitrary-style network (Huang & Belongie 2017): VGG19 up to relu4_1 as a frozen
encoder, adaptive instance normalisation, and a decoder trained here to invert it. Each
step pairs a batch of photos from --data with as many paintings from --styles (both
searched recursively; unreadable files are skipped and counted). The model
(OUT/adain.safetensors) holds the encoder too, so it needs no VGG19 download to run:
'styleforge transfer --model OUT/adain.safetensors --style ANY_PAINTING.jpg IN -o OUT'.
Checkpoints, --resume and torchrun work as for 'train'. The paper trains 160,000 steps of
batch 8 on MS-COCO and WikiArt.
"""


def register(subparsers: Any) -> None:
    """Add ``train-adain``."""
    d = AdaINTrainOptions()
    p = add_command(subparsers, "train-adain", "train an arbitrary-style (AdaIN) decoder", DESCRIPTION)
    p.add_argument("--styles", required=True, help="folder of style images (paintings, e.g. WikiArt)")
    p.add_argument("--data", required=True, help="folder of content photos (e.g. COCO train2014)")
    p.add_argument("--out", required=True, help="output folder: checkpoint, log.csv, loss.png, previews, adain.safetensors")
    p.add_argument("--epochs", type=positive_int, default=d.epochs, help="passes over the photo folder")
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size, help="photo/painting pairs per step (per process)")
    p.add_argument("--image-size", type=positive_int, default=d.image_size, help="training crop side (photos and paintings)")
    p.add_argument("--lr", type=positive_float, default=d.lr, help="Adam learning rate at step 0")
    p.add_argument("--lr-decay", type=non_negative_float, default=d.lr_decay, help="step t uses lr / (1 + lr_decay * t)")
    p.add_argument("--content-weight", type=non_negative_float, default=d.content_weight, help="weight of the relu4_1 content loss")
    p.add_argument("--style-weight", type=non_negative_float, default=d.style_weight,
                   help="weight of the mean/std style loss over relu1_1..relu4_1")
    p.add_argument("--checkpoint-every", type=non_negative_int, default=d.checkpoint_every,
                   help="steps between checkpoints (0: only at the end)")
    p.add_argument("--keep-models", action="store_true", help="also write a loadable model at every checkpoint")
    p.add_argument("--log-every", type=positive_int, default=d.log_every, help="steps between loss lines")
    p.add_argument("--max-steps", type=positive_int, default=d.max_steps, help="stop after this many steps")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--test-image", default=None, help="stylised (in the first style image) into OUT at every checkpoint")
    p.add_argument("--workers", type=non_negative_int, default=d.workers, help="background data-loading processes")
    p.add_argument("--seed", type=non_negative_int, default=d.seed, help="seeds initialisation, data order and every RNG")
    p.add_argument("--weights", default=d.weights, help="VGG19 weights for the encoder: cache name or file")
    add_precision_option(p, d.precision, "optimisation")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    add_device_option(p, d.device)
    p.set_defaults(handler=run_train_adain)


def run_train_adain(args: argparse.Namespace) -> int:
    """Train and print the model path. Options, the folders and the checkpoint to resume
    are checked before PyTorch is imported, so such errors come at once."""
    from styleforge.config import AdaINTrainOptions, options_from_kwargs
    from styleforge.training.plan import check_run_paths, validate_adain_options

    options = dict(
        epochs=args.epochs, batch_size=args.batch_size, image_size=args.image_size, lr=args.lr, lr_decay=args.lr_decay,
        content_weight=args.content_weight, style_weight=args.style_weight, checkpoint_every=args.checkpoint_every,
        keep_models=args.keep_models, log_every=args.log_every, max_steps=args.max_steps, workers=args.workers,
        seed=args.seed, device=args.device, weights=args.weights, precision=args.precision,
    )
    validate_adain_options(options_from_kwargs(AdaINTrainOptions, options, "train_adain"))
    check_run_paths(args.out, [args.styles, args.data], args.weights, resume=args.resume)
    from styleforge.training.adain import train_adain

    path = train_adain(args.styles, args.data, args.out, resume=args.resume, test_image=args.test_image,
                       progress=not args.quiet, **options)
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 wrote the model
        print(path)
    return 0
