"""Johnson training throughput: steps per second at batch 4, 256 px, styleforge vs a plain loop.

Both optimise the same transform network with the same losses and weights on the same
batches, with full-size VGG19 (random weights; the arithmetic is what is timed).

* ``baseline``: a plain loop as tutorials write it: fp32 eager, contiguous tensors, the
  full VGG19 (through fc8) run on the output and on the input every step, and the style
  image's Gram targets recomputed every step.
* ``styleforge``: ``styleforge.training.Trainer.step``: style targets once, VGG19 stops
  at relu5_1, the weights' precision ``auto`` (bf16 autocast on CPUs with native bf16 and
  on CUDA), losses reduced in fp32.

    python benchmarks/train.py --device cpu --steps 6 --json bench-results/train-cpu.json
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

from styleforge.config import TrainOptions  # noqa: E402
from styleforge.devices import resolve_device, synchronize  # noqa: E402
from styleforge.losses import content_loss, style_loss, style_target, total_variation  # noqa: E402
from styleforge.training import Trainer  # noqa: E402
from styleforge.transform_net import TransformNet  # noqa: E402


def make_folder(root: Path, count: int, size: int) -> Path:
    """Write ``count`` smooth random photos of ``size`` px."""
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC).save(root / f"{i:03d}.png")
    return root


def baseline_steps(trainer: Trainer, batches: list[torch.Tensor], style: torch.Tensor) -> tuple[float, list[float]]:
    """The plain loop on a fresh network with the trainer's initial weights and loss weights."""
    torch.manual_seed(trainer.opts.seed)
    net = TransformNet(trainer.opts.norm, trainer.opts.upsample).to(trainer.device)
    optimizer = torch.optim.Adam(net.parameters(), lr=trainer.opts.lr)
    vgg = trainer.vgg.to(memory_format=torch.contiguous_format)
    opts = trainer.opts
    everything = [opts.content_layer, *opts.style_layers, "fc8"]
    losses = []
    start = time.perf_counter()
    for photos in batches:
        x = photos.to(trainer.device).float()
        optimizer.zero_grad()
        y = net(x)
        feats_y = vgg.extract(vgg.normalize(y / 255), everything)
        with torch.no_grad():
            feats_x = vgg.extract(vgg.normalize(x / 255), everything)
            feats_s = vgg.extract(vgg.normalize(style), everything)
        lc = content_loss(feats_y[opts.content_layer], feats_x[opts.content_layer], "mse")
        ls = sum(style_loss(feats_y[l], style_target(feats_s[l])[0], "mse") for l in opts.style_layers) / len(opts.style_layers)
        total = trainer.alpha * lc + trainer.beta * ls + trainer.gamma * total_variation(y / 255)
        total.backward()
        optimizer.step()
        losses.append(float(total.detach()))
    synchronize(trainer.device)
    return time.perf_counter() - start, losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=6, help="timed steps (after 1 warm-up step each)")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--styles", type=int, default=1, help="also time a conditional-instance-norm network of this many styles")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    device = resolve_device(args.device)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        folder = make_folder(Path(tmp) / "photos", args.batch_size * (args.steps + 1), args.image_size)
        style_img = __import__("PIL.Image", fromlist=["Image"]).open(folder / "000.png").convert("RGB")
        opts = TrainOptions(batch_size=args.batch_size, image_size=args.image_size, device=str(device), workers=0,
                            precision=args.precision)
        trainer = Trainer(style_img, "style.png", folder, Path(tmp) / "out", opts, vgg=random_imagenet_vgg().to(device), progress=False)
        batches = [torch.stack([trainer.dataset[i] for i in range(b * args.batch_size, (b + 1) * args.batch_size)])
                   for b in range(args.steps + 1)]
        style = torch.from_numpy(np.asarray(style_img, dtype=np.float32) / 255).permute(2, 0, 1)[None].to(device)
        baseline_steps(trainer, batches[:1], style)  # warm-up
        base_seconds, base_losses = baseline_steps(trainer, batches[1:], style)
        print(f"  baseline: {args.steps / base_seconds:.3f} steps/s", file=sys.stderr)
        trainer.step(batches[0])  # warm-up
        synchronize(device)
        start = time.perf_counter()
        ours_losses = [trainer.step(b)["total"] for b in batches[1:]]
        synchronize(device)
        ours_seconds = time.perf_counter() - start
        print(f"  styleforge: {args.steps / ours_seconds:.3f} steps/s ({trainer.precision})", file=sys.stderr)
        multi_seconds = None
        if args.styles > 1:
            images = [__import__("PIL.Image", fromlist=["Image"]).open(folder / f"{i:03d}.png").convert("RGB") for i in range(args.styles)]
            multi = Trainer(images, [f"s{i}.png" for i in range(args.styles)], folder, Path(tmp) / "multi", opts,
                            vgg=trainer.vgg, progress=False)
            multi.step(batches[0])  # warm-up
            synchronize(device)
            start = time.perf_counter()
            for b in batches[1:]:
                multi.step(b)
                multi.state.step += 1  # the next style in turn, as the training loop does
            synchronize(device)
            multi_seconds = time.perf_counter() - start
            print(f"  styleforge, {args.styles} styles: {args.steps / multi_seconds:.3f} steps/s", file=sys.stderr)
    rows = [
        {"device": device.type, "impl": "baseline", "precision": "fp32", "steps_per_s": args.steps / base_seconds,
         "s_per_step": base_seconds / args.steps, "speedup": 1.0},
        {"device": device.type, "impl": "styleforge", "precision": trainer.precision, "steps_per_s": args.steps / ours_seconds,
         "s_per_step": ours_seconds / args.steps, "speedup": base_seconds / ours_seconds},
    ]
    if multi_seconds is not None:
        rows.append({"device": device.type, "impl": f"styleforge, {args.styles} styles", "precision": trainer.precision,
                     "steps_per_s": args.steps / multi_seconds, "s_per_step": multi_seconds / args.steps,
                     "speedup": base_seconds / multi_seconds})
    print(f"Johnson training, batch {args.batch_size}, {args.image_size} px, {args.steps} timed steps after 1 warm-up; "
          "full-size VGG19 with random weights")
    print_table(rows, [("device", "device", "s"), ("impl", "implementation", "s"), ("precision", "precision", "s"),
                       ("steps_per_s", "steps/s", ".3f"), ("s_per_step", "s/step", ".3f"), ("speedup", "x baseline", ".2f")])
    write_json(args.json, {"benchmark": "train", "environment": environment(device), "args": vars(args), "results": rows,
                           "baseline_losses": base_losses, "styleforge_losses": ours_losses})


if __name__ == "__main__":
    main()
