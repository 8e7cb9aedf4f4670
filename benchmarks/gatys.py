"""Gatys style transfer: seconds per L-BFGS iteration against fair baselines, beside the floor.

One run, one machine, full-size VGG19 (He-initialised random weights unless ``--weights``:
no download needed, the same arithmetic as trained weights), the same content and style
images, L-BFGS from the content image:

* ``tutorial``: the PyTorch neural-transfer tutorial's method written plainly here, which
  is what a careful user runs: VGG19's layers copied into an ``nn.Sequential`` cut after
  the deepest layer used, targets computed once, the tutorial's Gram
  (``F F^T / (C H W)``) and MSE losses, fp32, contiguous NCHW, ``torch.optim.LBFGS`` with
  its defaults and the tutorial's clamp in the closure. Its loss is in the tutorial's
  units, so only its time is compared.
* ``naive``: the whole VGG19 through fc8 every iteration and both targets recomputed with
  two more forward passes (the loop the first benchmark compared with; kept as a row).
* ``styleforge-<precision>``: ``styleforge.gatys.driver.run_stylize`` with ``--precision``
  fp32 and, where the hardware runs it natively, bf16 (CPUs with AVX512-BF16/AMX, GPUs)
  and fp16 (GPUs), the last ``--fp32-finish`` share of their steps in fp32 (styleforge's
  default: half with L-BFGS, none with Adam); ``--optimizer adam`` runs these rows with
  Adam, whose step is the same forward and backward pass as an L-BFGS iteration. ``loss vs fp32`` is the final loss against styleforge's fp32 run (the same
  objective) from one start; ``benchmarks/gatys_fidelity.py`` measures it over several.

Time per iteration is the steady state, the same for every row: from the end of the
first evaluation to the end of the last, over the evaluations in between (setup, targets
and the first evaluation's one-off costs excluded).

Floor: the FLOPs of one iteration (forward and backward through the cut VGG19, counted
with ``FlopCounterMode``) over the measured matrix-multiply throughput of the machine in
that precision (fp32 means TF32 on CUDA, which cuDNN uses for fp32 convolutions).

    python benchmarks/gatys.py --device cpu --sizes 512 --iterations 100 --json docs/benchmarks/gatys-fair-cpu.json
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from classify import random_imagenet_vgg  # noqa: E402
from common import (  # noqa: E402
    add_matmul_size_argument,
    environment,
    floor,
    model_gflops,
    precisions_to_time,
    print_table,
    throughputs,
    write_json,
)

from styleforge.config import GatysOptions  # noqa: E402
from styleforge.devices import resolve_device  # noqa: E402
from styleforge.gatys.driver import run_stylize  # noqa: E402
from styleforge.gatys.engine import ScaleProblem  # noqa: E402
from styleforge.gatys.torch_engine import TorchEngine  # noqa: E402
from styleforge.images.io import image_to_array, read_image, resize_long_side  # noqa: E402
from styleforge.losses.perceptual import content_loss, style_loss, style_target  # noqa: E402
from styleforge.vgg.architecture import LAYER_NAMES  # noqa: E402
from styleforge.vgg.network import VGG19, load_vgg19  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


# ------------------------------------------------------------------- the tutorial's method


def tutorial_model(vgg: VGG19, last: str) -> nn.Sequential:
    """VGG19's layers up to ``last`` as the tutorial builds them: its own conv modules,
    out-of-place ReLUs and max pools, in one ``nn.Sequential`` named like ours."""
    layers: list[tuple[str, nn.Module]] = []
    for name in LAYER_NAMES[: LAYER_NAMES.index(last) + 1]:
        if name.startswith("conv"):
            layers.append((name, getattr(vgg, name)))
        elif name.startswith("relu"):
            layers.append((name, nn.ReLU(inplace=False)))
        elif name.startswith("pool"):
            layers.append((name, nn.MaxPool2d(2, 2)))
    return nn.Sequential(OrderedDict(layers))


def tutorial_gram(features: torch.Tensor) -> torch.Tensor:
    """The tutorial's Gram matrix: ``F F^T / (N C H W)`` of (N, C, H, W) features."""
    n, c, h, w = features.shape
    flat = features.reshape(n * c, h * w)
    return flat @ flat.t() / (n * c * h * w)


def tutorial_features(model: nn.Sequential, x: torch.Tensor, wanted: set[str]) -> dict[str, torch.Tensor]:
    """Run ``model`` on ``x``, keeping the outputs of the ``wanted`` layers (the tutorial's
    loss modules sit there and read them)."""
    kept = {}
    for name, layer in model.named_children():
        x = layer(x)
        if name in wanted:
            kept[name] = x
    return kept


def tutorial(vgg: VGG19, content: torch.Tensor, style: torch.Tensor, opts: GatysOptions) -> float:
    """The tutorial's loop for ``opts.iterations`` function evaluations; returns seconds."""
    content_layers, style_layers = set(opts.content_layers), set(opts.style_layers)
    deepest = max(content_layers | style_layers, key=LAYER_NAMES.index)
    model = tutorial_model(vgg.to(memory_format=torch.contiguous_format), deepest).requires_grad_(False)
    with torch.no_grad():
        content_targets = tutorial_features(model, vgg.normalize(content), content_layers)
        style_targets = {k: tutorial_gram(v) for k, v in tutorial_features(model, vgg.normalize(style), style_layers).items()}
    image = content.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([image])
    ends: list[float] = []

    def closure() -> torch.Tensor:
        with torch.no_grad():
            image.clamp_(0, 1)
        optimizer.zero_grad()
        feats = tutorial_features(model, vgg.normalize(image), content_layers | style_layers)
        content_score = sum(F.mse_loss(feats[l], content_targets[l]) for l in content_layers)
        style_score = sum(F.mse_loss(tutorial_gram(feats[l]), style_targets[l]) for l in style_layers)
        loss = 1e6 * style_score + content_score
        loss.backward()
        ends.append(end_time(loss))
        return loss

    while len(ends) < opts.iterations:
        optimizer.step(closure)
    return steady_seconds(ends)


def end_time(loss: torch.Tensor) -> float:
    """The time once ``loss`` is computed (reading it waits for the device, as every
    implementation here does once per evaluation)."""
    float(loss.detach())
    return time.perf_counter()


def steady_seconds(ends: list[float]) -> float:
    """Seconds per evaluation from the end of the first to the end of the last."""
    if len(ends) < 2:
        raise SystemExit("time at least 2 iterations")
    return (ends[-1] - ends[0]) / (len(ends) - 1)


def naive(vgg: VGG19, content: torch.Tensor, style: torch.Tensor, opts: GatysOptions) -> float:
    """The whole network and both targets every iteration, fp32; returns seconds per iteration."""
    vgg = vgg.to(memory_format=torch.contiguous_format)
    alpha, beta = opts.loss_weights(vgg.convention.name, vgg.convention.input_scale)
    every_layer = [*opts.content_layers, *opts.style_layers, "fc8"]
    image = content.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([image], lr=opts.learning_rate(), max_iter=1, history_size=100,
                                  tolerance_grad=-1, tolerance_change=-1)
    ends: list[float] = []

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        generated = vgg.extract(vgg.normalize(image), every_layer)
        with torch.no_grad():
            content_feats = vgg.extract(vgg.normalize(content), every_layer)
            style_feats = vgg.extract(vgg.normalize(style), every_layer)
        lc = sum(content_loss(generated[l], content_feats[l]) for l in opts.content_layers) / len(opts.content_layers)
        ls = sum(style_loss(generated[l], style_target(style_feats[l])[0]) for l in opts.style_layers) / len(opts.style_layers)
        total = alpha * lc + beta * ls
        total.backward()
        ends.append(end_time(total))
        return total

    for _ in range(opts.iterations):
        optimizer.step(closure)
    return steady_seconds(ends)


# ------------------------------------------------------------------------- styleforge


def styleforge_run(vgg: VGG19, content_img: object, style_img: object, opts: GatysOptions) -> tuple[float, list[float]]:
    """``run_stylize`` in ``opts.precision``; returns (seconds per iteration, losses),
    timed by the run's own step clock (each step's losses are read as floats)."""
    result = run_stylize(content_img, style_img, opts, vgg=vgg, progress=False)
    return steady_seconds(result.history.column("seconds")), result.history.column("total")


def iteration_gflops(vgg: VGG19, content: torch.Tensor, style: torch.Tensor, opts: GatysOptions) -> float:
    """FLOPs of one styleforge iteration (forward and backward), GFLOP."""
    engine = TorchEngine(vgg, opts, vgg.device)
    arrays = content.cpu().numpy(), style.cpu().numpy()
    content_targets, style_targets = engine.targets(ScaleProblem(arrays[0], [arrays[1]], arrays[0]))
    image = content.clone().requires_grad_(True)
    return model_gflops(lambda: engine.losses(image, content_targets, style_targets)["total"].backward())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--weights", default=None, help="cache name or file (default: random full-size weights)")
    parser.add_argument("--sizes", default="512")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--baseline-iterations", type=int, default=None,
                        help="iterations of the tutorial and naive rows (default: --iterations; their time per iteration is flat)")
    parser.add_argument("--precisions", default=None, help="styleforge precisions, e.g. fp32,bf16 (default: fp32 + native ones)")
    parser.add_argument("--fp32-finish", type=float, default=GatysOptions.fp32_finish,
                        help="share of the last steps reduced-precision rows run in fp32 (default: the product's, "
                             "0.5 for L-BFGS and 0 for Adam; see benchmarks/gatys_fidelity.py)")
    parser.add_argument("--optimizer", default="lbfgs", choices=("lbfgs", "adam"),
                        help="the styleforge rows' optimiser (the tutorial row is always its own L-BFGS): an Adam "
                             "step costs the same forward and backward pass as an L-BFGS iteration")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive row")
    parser.add_argument("--content", default=str(EXAMPLES / "chelsea.jpg"))
    parser.add_argument("--style", default=str(EXAMPLES / "coffee.jpg"))
    parser.add_argument("--json", default=None)
    add_matmul_size_argument(parser, "4096")
    args = parser.parse_args()

    device = resolve_device(args.device)
    vgg = (load_vgg19(args.weights) if args.weights else random_imagenet_vgg()).to(device)
    content_img, style_img = read_image(args.content), read_image(args.style)
    precisions = precisions_to_time(device, args.precisions)
    throughput = throughputs(device, precisions, n=args.matmul_size or 4096)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        opts = GatysOptions(size=size, iterations=args.iterations, device=str(device))
        content = torch.from_numpy(image_to_array(resize_long_side(content_img, size))).to(device)
        style = torch.from_numpy(image_to_array(resize_long_side(style_img, size))).to(device)
        gflop = iteration_gflops(vgg, content, style, opts)
        base_opts = GatysOptions(size=size, iterations=args.baseline_iterations or args.iterations, device=str(device))
        timed = [("tutorial", "fp32", tutorial(vgg, content, style, base_opts), None)]
        if not args.no_naive:
            timed.append(("naive", "fp32", naive(vgg, content, style, base_opts), None))
        for precision in precisions:
            seconds, losses = styleforge_run(vgg, content_img, style_img, GatysOptions(
                size=size, iterations=args.iterations, device=str(device), precision=precision, fp32_finish=args.fp32_finish,
                optimizer=args.optimizer))
            timed.append((f"styleforge-{precision}", precision, seconds, losses))
        fp32_loss = next(losses[-1] for name, _, _, losses in timed if name == "styleforge-fp32")
        reference = timed[0][2]
        for name, precision, seconds, losses in timed:
            least = floor(gflop, throughput, precision)
            rows.append({
                "device": device.type, "size": size, "impl": name, "precision": precision, "s_per_it": seconds,
                "speedup": reference / seconds, "gflop": gflop, "floor_s": least, "x_floor": seconds / least if least else None,
                "final_loss": losses[-1] if losses else None,
                "loss_vs_fp32_pct": 100 * (losses[-1] / fp32_loss - 1) if losses else None,
            })
            print(f"  {name} {size}px: {seconds:.3f} s/it", file=sys.stderr)
    optimizer = {"lbfgs": "L-BFGS", "adam": "styleforge rows Adam, tutorial L-BFGS"}[args.optimizer]
    print(f"Gatys style transfer, {optimizer}, {args.iterations} iterations; weights: {args.weights or 'random (He init)'}")
    print_table(rows, [
        ("device", "device", "s"), ("size", "size", "d"), ("impl", "implementation", "s"),
        ("s_per_it", "s/iter", ".3f"), ("speedup", "x tutorial", ".2f"), ("floor_s", "floor s", ".3f"),
        ("x_floor", "x floor", ".1f"), ("final_loss", f"loss @{args.iterations}", ".5g"),
        ("loss_vs_fp32_pct", "vs fp32 %", "+.2f"),
    ])
    write_json(args.json, {"benchmark": "gatys", "environment": environment(device), "matmul_gflops": throughput,
                           "args": vars(args), "results": rows})


if __name__ == "__main__":
    main()
