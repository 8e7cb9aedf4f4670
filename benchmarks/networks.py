"""Inference latency of each kind of style network, and training steps per second of
both trainers, per precision path, with the machine's floor beside each.

Networks (random weights, full size; the arithmetic is what is timed):

* ``single``: the one-style TransformNet (Johnson et al.) that ``transfer`` runs;
* ``multi4``: the same with conditional instance norm for 4 styles, a 50/50 blend of two
  selected (it must cost the same as ``single``);
* ``adain``: the AdaIN stylizer (VGG19 to relu4_1, AdaIN with fixed style statistics,
  decoder), i.e. the encoder + decoder cost of an arbitrary-style model.

Paths: ``fp32`` (eager, NCHW); on the CPU ``fp32-cl`` (channels_last: what ``transfer``
runs in fp32) and, where the CPU has native bf16, ``bf16-cl`` (bf16 autocast,
channels_last: what ``transfer --precision auto`` runs there); on CUDA ``fp16`` and
``bf16`` (autocast, NCHW), ``fp16-cl`` (channels_last), and each of those replayed as a
CUDA graph (``-graph``: one launch for the whole network, captured once per shape),
which is what removes the launch-bound wall at small sizes.

Floor: the network's FLOPs (convolutions, counted by FlopCounterMode) over the measured
matrix-multiply throughput of this machine in the path's precision (on CUDA, fp32 means
TF32, which cuDNN uses for fp32 convolutions by default).

    python benchmarks/networks.py --device cpu --sizes 512 --json docs/benchmarks/networks-cpu.json
    python benchmarks/networks.py --device cuda --sizes 512,1920x1080 --batches 1,8 --json networks-cuda.json
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
from classify import random_imagenet_vgg  # noqa: E402
from common import (  # noqa: E402
    add_matmul_size_argument,
    environment,
    floor,
    is_native,
    median,
    model_gflops,
    print_table,
    throughputs,
    time_call,
    write_json,
)

from styleforge.devices import autocast, resolve_device, synchronize  # noqa: E402
from styleforge.nets.adain import AdaINStylizer  # noqa: E402
from styleforge.nets.transform_net import InstanceNorm, TransformNet  # noqa: E402
from styleforge.utils.cuda_graphs import GraphedCalls  # noqa: E402
from tests.synthetic import random_adain_network  # noqa: E402


def _noisy_norms(net: TransformNet) -> TransformNet:
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, InstanceNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    return net.eval().requires_grad_(False)


def networks(device: torch.device) -> dict[str, torch.nn.Module]:
    """The three network kinds, on ``device``."""
    torch.manual_seed(0)
    multi = _noisy_norms(TransformNet(styles=4))
    multi.select_styles([0.5, 0.5, 0.0, 0.0])
    adain = random_adain_network(random_imagenet_vgg())
    mean, std = torch.rand(1, 512, 1, 1) * 2, torch.rand(1, 512, 1, 1) + 0.5
    stylizer = AdaINStylizer(adain, mean, std, alpha=1.0)
    nets = {"single": _noisy_norms(TransformNet()), "multi4": multi, "adain": stylizer}
    return {name: net.eval().requires_grad_(False).to(device) for name, net in nets.items()}


def paths(device: torch.device) -> list[str]:
    """The precision paths timed on ``device``."""
    if device.type == "cuda":
        return ["fp32", "fp16", "bf16", "fp16-cl", "fp32-graph", "fp16-graph", "bf16-graph", "fp16-cl-graph"]
    # bf16 in NCHW is slower on the CPU (oneDNN's fast path is channels_last); a CPU
    # without native bf16 would only time the emulation.
    return ["fp32", "fp32-cl", "bf16-cl"] if is_native(device, "bf16") else ["fp32", "fp32-cl"]


def runner(net: torch.nn.Module, x: torch.Tensor, path: str) -> Callable[[], torch.Tensor]:
    """A no-argument callable running ``net`` on ``x`` in ``path``: fp32, or fp16/bf16
    autocast (the product's reduced-precision path), channels_last for ``-cl``, replayed
    as a CUDA graph for ``-graph``."""
    device = x.device
    base = path.removesuffix("-graph")
    precision = base.split("-")[0]
    layout = torch.channels_last if base.endswith("-cl") else torch.contiguous_format
    module = copy.deepcopy(net).to(memory_format=layout) if layout == torch.channels_last else net
    xin = x.contiguous(memory_format=layout)

    # -graph: the product's CUDA-graph replay, as ``transfer`` runs a repeated size on
    # CUDA (captured on the first call, which the warm-up pays; copy in and out included).
    forward = GraphedCalls(module, capture_after=0) if path.endswith("-graph") else module

    def call() -> torch.Tensor:
        with torch.inference_mode(), autocast(device, precision):
            return forward(xin)

    return call


def reference(net: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    """fp32 eager output, rounded to 0-255."""
    with torch.inference_mode():
        return net(x).float().clamp(0, 255).round().cpu().numpy()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def time_inference(device: torch.device, sizes: list[tuple[int, int]], batches: list[int], repeats: int,
                   floors: dict[str, float]) -> list[dict]:
    """One row per network, size, batch and path."""
    rows = []
    for name, net in networks(device).items():
        for width, height in sizes:
            for batch in batches:
                x = torch.rand(batch, 3, height, width, device=device) * 255
                gflop = model_gflops(lambda x=x: net(x[:1])) * batch
                expected = reference(net, x)
                for path in paths(device):
                    row = {"network": name, "size": f"{width}x{height}", "batch": batch, "path": path, "gflop": gflop}
                    try:
                        call = runner(net, x, path)
                        out = call().float().clamp(0, 255).round().cpu().numpy()
                        ms = 1000 * median(time_call(call, device, warmup=3, repeats=repeats))
                    except Exception as exc:  # noqa: BLE001 (a path this machine cannot run is reported, not fatal)
                        rows.append({**row, "error": f"{type(exc).__name__}: {str(exc)[:160]}"})
                        print(f"{name} {width}x{height} b{batch} {path}: {rows[-1]['error']}", flush=True)
                        continue
                    precision = "fp32" if "fp32" in path else ("bf16" if "bf16" in path else "fp16")
                    least = floor(gflop, floors, precision)
                    floor_ms = 1000 * least if least else None
                    row.update(ms=ms, images_per_s=1000 * batch / ms, floor_ms=floor_ms, floor_ratio=ms / floor_ms if floor_ms else None,
                               psnr_db=psnr(out, expected), max_err=float(np.abs(out - expected).max()))
                    rows.append(row)
                    print(f"{name} {width}x{height} b{batch} {path}: {ms:.2f} ms ({row['images_per_s']:.1f}/s), "
                          f"floor {floor_ms:.2f} ms, PSNR {row['psnr_db']:.1f} dB", flush=True)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    return rows


def time_training(device: torch.device, precisions: list[str], steps: int, workdir: Path) -> list[dict]:
    """Steps per second of the feed-forward trainer (batch 4, 256 px) and the AdaIN trainer
    (batch 8, 256 px: the paper's), on the same random photos and full-size random VGG19."""
    from train import make_folder

    from styleforge.config import AdaINTrainOptions, TrainOptions
    from styleforge.images.io import read_image
    from styleforge.training.adain import AdaINTrainer
    from styleforge.training.johnson import Trainer
    from styleforge.training.loop import PhotoFolder

    photos = make_folder(workdir / "photos", 16, 256)
    paintings = make_folder(workdir / "paintings", 8, 256)
    rows = []
    for precision in precisions:
        common = dict(image_size=256, workers=0, device=str(device), precision=precision, checkpoint_every=0, log_every=10**6)
        vgg = random_imagenet_vgg().to(device)
        johnson = Trainer(read_image(PhotoFolder(paintings, 256).files[0]), "style.png", photos, workdir / f"j-{precision}", TrainOptions(batch_size=4, **common), vgg=vgg, progress=False)
        adain = AdaINTrainer(paintings, photos, workdir / f"a-{precision}", AdaINTrainOptions(batch_size=8, **common), vgg=vgg,
                             progress=False)
        for name, trainer, batch in (("johnson", johnson, 4), ("adain", adain, 8)):
            data = trainer.dataset
            if name == "johnson":
                sample = torch.stack([data[i] for i in range(batch)])
            else:
                sample = (torch.stack([data.photos[i] for i in range(batch)]), torch.stack([data.styles[i % 8] for i in range(batch)]))
            trainer.step(sample)  # warm-up
            synchronize(device)
            start = time.perf_counter()
            for _ in range(steps):
                trainer.step(sample)
            synchronize(device)
            seconds = (time.perf_counter() - start) / steps
            rows.append({"trainer": name, "batch": batch, "precision": trainer.precision, "s_per_step": seconds,
                         "steps_per_s": 1 / seconds})
            print(f"train {name} batch {batch} {trainer.precision}: {seconds * 1000:.1f} ms/step", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", default="512", help="square sides or WxH, e.g. 512,1920x1080")
    parser.add_argument("--batches", default="1", help="batch sizes, e.g. 1,8")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train-steps", type=int, default=3, help="timed training steps per trainer (0: skip training)")
    parser.add_argument("--train-precisions", default="fp32,auto")
    parser.add_argument("--json", default=None)
    add_matmul_size_argument(parser, "2048, 8192 on CUDA")
    args = parser.parse_args()
    device = resolve_device(args.device)
    sizes = [tuple(int(v) for v in s.split("x")) if "x" in s else (int(s), int(s)) for s in args.sizes.split(",")]
    n = args.matmul_size or (8192 if device.type == "cuda" else 2048)
    if device.type == "cuda":
        # cuDNN runs fp32 convolutions in TF32 by default (torch.backends.cudnn.allow_tf32):
        # their floor is the TF32 matmul rate, measured with TF32 allowed for matmuls too.
        torch.backends.cuda.matmul.allow_tf32 = True
    floors = throughputs(device, ["fp32", "bf16", "fp16"] if device.type == "cuda" else ["fp32", "bf16"], n=n)
    torch.backends.cuda.matmul.allow_tf32 = False
    rows = time_inference(device, sizes, [int(b) for b in args.batches.split(",")], args.repeats, floors)
    print_table([r for r in rows if "ms" in r], [("network", "network", ""), ("size", "size", ""), ("batch", "batch", "d"),
                                                  ("path", "path", ""), ("ms", "ms", ".2f"), ("images_per_s", "img/s", ".1f"),
                                                  ("gflop", "GFLOP", ".0f"), ("floor_ms", "floor ms", ".2f"),
                                                  ("psnr_db", "PSNR dB", ".1f")])
    training = []
    if args.train_steps:
        with tempfile.TemporaryDirectory() as tmp:
            training = time_training(device, args.train_precisions.split(","), args.train_steps, Path(tmp))
        print_table(training, [("trainer", "trainer", ""), ("batch", "batch", "d"), ("precision", "precision", ""),
                               ("s_per_step", "s/step", ".3f"), ("steps_per_s", "steps/s", ".2f")])
    write_json(args.json, {"benchmark": "networks", "environment": environment(device), "args": vars(args),
                           "matmul_gflops": floors, "inference": rows, "training": training})


if __name__ == "__main__":
    main()
