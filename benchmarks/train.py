"""Johnson training steps per second at batch 4, 256 px: fair baselines beside the floor.

One run, one machine, full-size VGG19 (random weights; the arithmetic is what is timed),
the same batches:

* ``examples-fp32``: pytorch/examples' training step written plainly here, which is what
  a careful user runs: their TransformerNet layout (the transfer benchmark's
  ``PlainTransformNet``), their loss layout on our VGG19 (content at relu2_2, style Grams
  ``F F^T / (C H W)`` at relu1_2, relu2_2, relu3_3 and relu4_3, the network cut after
  relu4_3, style Grams computed once, MSE losses, weights 1e5 and 1e10), Adam, fp32.
* ``examples-bf16``: the same under bf16 autocast (fp16 on GPUs without bf16), the
  simple setting a user would try.
* ``naive``: the full VGG19 on output and input every step and the style targets
  recomputed every step (the plain loop the first version of this benchmark used).
* ``styleforge-<precision>``: ``styleforge.training.johnson.Trainer.step``, fp32 and the native
  reduced precision (bf16 on CPUs with AVX512-BF16/AMX and on bf16-capable GPUs), with
  pytorch/examples' layers (the like-for-like rows) and with styleforge's default
  layers (content relu4_2, style relu1_1..relu5_1: deeper, so more work per step).
  ``loss vs fp32`` compares the first step's loss with the fp32 trainer's of the same
  layers on the same batch from the same initial weights.

Timing is interleaved: after one warm-up step each, every implementation takes one step
on batch 1, then every one on batch 2, and so on, and each row reports the median of its
per-step times. A shared machine's speed drifts by 10-20 % over minutes; timed one after
the other, that drift would land on whichever row ran during it.

Floor: the FLOPs of one styleforge step with the row's layers (forward and backward,
counted with ``FlopCounterMode``; pytorch/examples' layers for its rows, the default
ones for the naive loop) over the measured matrix-multiply throughput in that precision.

    python benchmarks/train.py --device cpu --steps 6 --json docs/benchmarks/train-fair-cpu.json
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from classify import random_imagenet_vgg  # noqa: E402
from common import (  # noqa: E402
    add_matmul_size_argument,
    environment,
    floor,
    median,
    model_gflops,
    precisions_to_time,
    print_table,
    throughputs,
    write_json,
)
from transfer import PlainTransformNet  # noqa: E402

from styleforge.config import TrainOptions  # noqa: E402
from styleforge.devices import autocast, resolve_device, synchronize  # noqa: E402
from styleforge.losses.perceptual import content_loss, style_loss, style_target, total_variation  # noqa: E402
from styleforge.nets.transform_net import TransformNet  # noqa: E402
from styleforge.training.johnson import Trainer  # noqa: E402
from styleforge.vgg.network import VGG19  # noqa: E402

#: pytorch/examples' loss layout (their VGG16 slices end at these layers).
EXAMPLES_STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
EXAMPLES_CONTENT_LAYER = "relu2_2"
EXAMPLES_WEIGHTS = (1e5, 1e10)
#: The layers of styleforge's rows: pytorch/examples' (like for like) and its own defaults.
LAYOUTS = {"examples": {"content_layer": EXAMPLES_CONTENT_LAYER, "style_layers": EXAMPLES_STYLE_LAYERS}, "default": {}}


def make_folder(root: Path, count: int, size: int) -> Path:
    """Write ``count`` smooth random photos of ``size`` px."""
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC).save(root / f"{i:03d}.png")
    return root


def naive_stepper(trainer: Trainer, style: torch.Tensor) -> Callable[[torch.Tensor], float]:
    """One step of the naive loop per call, on a fresh network with the trainer's initial
    weights and loss weights; each call returns the step's loss."""
    torch.manual_seed(trainer.opts.seed)
    net = TransformNet(trainer.opts.norm, trainer.opts.upsample).to(trainer.device)
    optimizer = torch.optim.Adam(net.parameters(), lr=trainer.opts.lr)
    vgg = trainer.vgg
    opts = trainer.opts
    everything = [opts.content_layer, *opts.style_layers, "fc8"]

    def step(photos: torch.Tensor) -> float:
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
        return float(total.detach())

    return step


def examples_gram(features: torch.Tensor) -> torch.Tensor:
    """pytorch/examples' Gram matrix: ``F F^T / (C H W)`` per image, (N, C, C)."""
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat.bmm(flat.transpose(1, 2)) / (c * h * w)


def examples_stepper(vgg: VGG19, style: torch.Tensor, precision: str, device: torch.device,
                     seed: int) -> Callable[[torch.Tensor], float]:
    """One step of pytorch/examples' training loop in ``precision`` per call (autocast around
    everything, as a user adds it); each call returns the step's loss."""
    torch.manual_seed(seed)
    net = PlainTransformNet().to(device).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    layers = [*EXAMPLES_STYLE_LAYERS]
    content_weight, style_weight = EXAMPLES_WEIGHTS
    with torch.no_grad(), autocast(device, precision):
        gram_style = {l: examples_gram(f) for l, f in vgg.extract(vgg.normalize(style), layers).items()}

    def step(photos: torch.Tensor) -> float:
        x = photos.to(device).float()
        optimizer.zero_grad()
        with autocast(device, precision):
            y = net(x)
            features_y = vgg.extract(vgg.normalize(y / 255), layers)
            features_x = vgg.extract(vgg.normalize(x / 255), [EXAMPLES_CONTENT_LAYER])
            content = content_weight * F.mse_loss(features_y[EXAMPLES_CONTENT_LAYER], features_x[EXAMPLES_CONTENT_LAYER])
            style_total = sum(F.mse_loss(examples_gram(features_y[l]), gram_style[l].expand(len(x), -1, -1)) for l in layers)
            total = content + style_weight * style_total
        total.backward()
        optimizer.step()
        return float(total.detach())

    return step


def trainer_stepper(trainer: Trainer, next_style: bool = False) -> Callable[[torch.Tensor], float]:
    """``Trainer.step`` per call, returning the step's loss (``next_style``: advancing the
    step counter, which turns a multi-style trainer's styles round-robin as the training
    loop does)."""

    def step(batch: torch.Tensor) -> float:
        loss = trainer.step(batch)["total"]
        if next_style:
            trainer.state.step += 1
        return loss

    return step


def time_interleaved(steppers: dict[str, Callable[[torch.Tensor], float]], batches: list[torch.Tensor],
                     device: torch.device) -> dict[str, list[float]]:
    """One warm-up step each on ``batches[0]``, then round-robin over ``steppers`` for each
    later batch (so slow drift of the machine's speed lands on every row alike); returns
    each stepper's seconds per timed step."""
    for step in steppers.values():
        step(batches[0])
    seconds: dict[str, list[float]] = {name: [] for name in steppers}
    for batch in batches[1:]:
        for name, step in steppers.items():
            synchronize(device)
            start = time.perf_counter()
            step(batch)
            synchronize(device)
            seconds[name].append(time.perf_counter() - start)
    return seconds


def step_gflops(trainer: Trainer, batch: torch.Tensor) -> float:
    """FLOPs of one styleforge training step's forward and backward, GFLOP."""
    return model_gflops(lambda: trainer.losses(batch)["total"].backward())



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=6, help="timed steps (after 1 warm-up step each)")
    parser.add_argument("--precisions", default=None, help="e.g. fp32,bf16 (default: fp32 + the native reduced one)")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive row")
    parser.add_argument("--styles", type=int, default=1, help="also time a conditional-instance-norm network of this many styles")
    parser.add_argument("--json", default=None)
    add_matmul_size_argument(parser, "4096")
    args = parser.parse_args()
    device = resolve_device(args.device)
    precisions = precisions_to_time(device, args.precisions, reduced=1)
    throughput = throughputs(device, precisions, n=args.matmul_size or 4096)
    vgg = random_imagenet_vgg().to(device)
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_folder(Path(tmp) / "photos", args.batch_size * (args.steps + 1), args.image_size)
        style_img = Image.open(folder / "000.png").convert("RGB")
        style = torch.from_numpy(np.asarray(style_img, dtype=np.float32) / 255).permute(2, 0, 1)[None].to(device)

        def trainer_for(precision: str, layers: str = "default", name: str = "out", images: object = style_img,
                        names: object = "style.png") -> Trainer:
            opts = TrainOptions(batch_size=args.batch_size, image_size=args.image_size, device=str(device), workers=0,
                                precision=precision, **LAYOUTS[layers])
            # a VGG19 of its own: the trainer sets its memory format for its precision, which
            # on a shared network would change the examples rows' layout too
            return Trainer(images, names, folder, Path(tmp) / f"{name}-{layers}-{precision}", opts, vgg=copy.deepcopy(vgg),
                           progress=False)

        first = trainer_for("fp32")
        batches = [torch.stack([first.dataset[i] for i in range(b * args.batch_size, (b + 1) * args.batch_size)])
                   for b in range(args.steps + 1)]
        gflops = {layers: step_gflops(trainer_for("fp32", layers), batches[0]) for layers in LAYOUTS}
        steppers: dict[str, tuple[str, Callable[[torch.Tensor], float]]] = {}
        for precision in precisions:
            steppers[f"examples-{precision}"] = (precision, examples_stepper(vgg, style, precision, device, 0))
        if not args.no_naive:
            steppers["naive"] = ("fp32", naive_stepper(first, style))
        first_losses = {}
        for layers in LAYOUTS:
            for precision in precisions:
                trainer = trainer_for(precision, layers)
                first_losses[(layers, precision)] = float(trainer.losses(batches[0])["total"].detach())
                steppers[f"styleforge-{precision}, {layers} layers"] = (precision, trainer_stepper(trainer))
        if args.styles > 1:
            images = [Image.open(folder / f"{i:03d}.png").convert("RGB") for i in range(args.styles)]
            multi = trainer_for(precisions[-1], "default", "multi", images, [f"s{i}.png" for i in range(args.styles)])
            steppers[f"styleforge-{precisions[-1]}, default layers, {args.styles} styles"] = (precisions[-1],
                                                                                             trainer_stepper(multi, True))
        seconds = time_interleaved({name: step for name, (_, step) in steppers.items()}, batches, device)
        timed = [(name, precision, median(seconds[name])) for name, (precision, _) in steppers.items()]
    reference = timed[0][2]
    rows = []
    for name, precision, per_step in timed:
        gflop = gflops["default" if "default" in name or name == "naive" else "examples"]
        least = floor(gflop, throughput, precision)
        layers = next((k for k in LAYOUTS if name == f"styleforge-{precision}, {k} layers"), None)
        own = first_losses[(layers, precision)] if layers else None
        rows.append({"device": device.type, "impl": name, "precision": precision, "steps_per_s": 1 / per_step,
                     "s_per_step": per_step, "speedup": reference / per_step, "gflop": gflop,
                     "floor_s": least, "x_floor": per_step / least if least else None,
                     "loss_vs_fp32_pct": None if own is None else 100 * (own / first_losses[(layers, "fp32")] - 1)})
        print(f"  {name}: {1 / per_step:.3f} steps/s", file=sys.stderr)
    print(f"Johnson training, batch {args.batch_size}, {args.image_size} px, median of {args.steps} interleaved steps "
          "after 1 warm-up; full-size VGG19 with random weights")
    print_table(rows, [("device", "device", "s"), ("impl", "implementation", "s"), ("steps_per_s", "steps/s", ".3f"),
                       ("s_per_step", "s/step", ".3f"), ("speedup", "x examples fp32", ".2f"), ("floor_s", "floor s", ".3f"),
                       ("x_floor", "x floor", ".1f"), ("loss_vs_fp32_pct", "loss vs fp32 %", "+.2f")])
    write_json(args.json, {"benchmark": "train", "environment": environment(device), "matmul_gflops": throughput,
                           "args": vars(args), "results": rows})


if __name__ == "__main__":
    main()
