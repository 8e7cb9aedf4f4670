"""Gatys style transfer: seconds per iteration and loss reached, styleforge vs a plain baseline.

Both minimise the same objective (styleforge's losses, default layers and weights) with
the same optimiser from the same start, on full-size VGG19 (He-initialised random
weights unless ``--weights``: no download needed, same arithmetic as trained weights).

* ``baseline``: what a straightforward implementation does: every iteration runs the
  full VGG19 (through fc8) on the generated image and recomputes the content and style
  targets with two more full forward passes; fp32 eager, contiguous tensors.
* ``styleforge``: ``styleforge.gatys.run_stylize``: targets once without gradients,
  VGG19 truncated after the deepest layer used (channels_last on CUDA).

    python benchmarks/gatys.py --device cpu --sizes 256,512 --iterations 50 --json bench-results/gatys-cpu.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from classify import random_imagenet_vgg  # noqa: E402
from common import environment, print_table, write_json  # noqa: E402

from styleforge.config import GatysOptions  # noqa: E402
from styleforge.devices import resolve_device, synchronize  # noqa: E402
from styleforge.gatys import run_stylize  # noqa: E402
from styleforge.images import image_to_array, resize_long_side  # noqa: E402
from styleforge.losses import content_loss, style_loss, style_target  # noqa: E402
from styleforge.vgg import VGG19, load_vgg19  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def baseline(vgg: VGG19, content: torch.Tensor, style: torch.Tensor, opts: GatysOptions) -> tuple[float, list[float]]:
    """Plain Gatys loop; returns (seconds, losses per iteration)."""
    vgg = vgg.to(memory_format=torch.contiguous_format)
    alpha, beta = opts.loss_weights(vgg.convention.name, vgg.convention.input_scale)
    layer_weight = 1.0 / len(opts.style_layers)
    every_layer = [*opts.content_layers, *opts.style_layers, "fc8"]  # the full network, every time
    image = content.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([image], lr=opts.learning_rate(), max_iter=1, history_size=100,
                                  tolerance_grad=-1, tolerance_change=-1)
    losses: list[float] = []

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        generated = vgg.extract(vgg.normalize(image), every_layer)
        with torch.no_grad():
            content_feats = vgg.extract(vgg.normalize(content), every_layer)
            style_feats = vgg.extract(vgg.normalize(style), every_layer)
        lc = sum(content_loss(generated[l], content_feats[l]) for l in opts.content_layers) / len(opts.content_layers)
        ls = sum(layer_weight * style_loss(generated[l], style_target(style_feats[l])[0]) for l in opts.style_layers)
        total = alpha * lc + beta * ls
        total.backward()
        losses.append(float(total.detach()))
        return total

    synchronize(content.device)
    start = time.perf_counter()
    while len(losses) < opts.iterations:
        optimizer.step(closure)
    synchronize(content.device)
    return time.perf_counter() - start, losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--weights", default=None, help="cache name or file (default: random full-size weights)")
    parser.add_argument("--sizes", default="256,512")
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--content", default=str(EXAMPLES / "chelsea.jpg"))
    parser.add_argument("--style", default=str(EXAMPLES / "coffee.jpg"))
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    device = resolve_device(args.device)
    vgg = (load_vgg19(args.weights) if args.weights else random_imagenet_vgg()).to(device)
    from styleforge.images import read_image

    content_img, style_img = read_image(args.content), read_image(args.style)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        opts = GatysOptions(size=size, iterations=args.iterations, device=str(device))
        content = torch.from_numpy(image_to_array(resize_long_side(content_img, size))).to(device)
        style = torch.from_numpy(image_to_array(resize_long_side(style_img, size))).to(device)
        base_seconds, base_losses = baseline(vgg, content, style, opts)
        print(f"  baseline {size}px: {base_seconds / args.iterations:.3f} s/it", file=sys.stderr)
        synchronize(device)
        start = time.perf_counter()
        result = run_stylize(content_img, style_img, opts, vgg=vgg, progress=False)
        synchronize(device)
        ours_seconds = time.perf_counter() - start
        ours_losses = result.history.column("total")
        print(f"  styleforge {size}px: {ours_seconds / args.iterations:.3f} s/it", file=sys.stderr)
        for name, seconds, losses in (("baseline", base_seconds, base_losses), ("styleforge", ours_seconds, ours_losses)):
            rows.append({
                "device": device.type, "size": size, "impl": name, "iterations": len(losses),
                "s_per_it": seconds / len(losses), "speedup": (base_seconds / len(base_losses)) / (seconds / len(losses)),
                "first_loss": losses[0], "final_loss": losses[-1], "min_loss": float(np.min(losses)),
            })
    print(f"Gatys style transfer, L-BFGS, {args.iterations} iterations, default layers and weights; "
          f"weights: {args.weights or 'random (He init)'}")
    print_table(rows, [
        ("device", "device", "s"), ("size", "size", "d"), ("impl", "implementation", "s"),
        ("s_per_it", "s/iter", ".3f"), ("speedup", "x baseline", ".2f"),
        ("first_loss", "loss @1", ".4g"), ("final_loss", f"loss @{args.iterations}", ".4g"), ("min_loss", "min loss", ".4g"),
    ])
    write_json(args.json, {"benchmark": "gatys", "environment": environment(device), "args": vars(args), "results": rows})


if __name__ == "__main__":
    main()
