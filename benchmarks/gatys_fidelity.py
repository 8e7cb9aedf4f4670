"""Gatys in reduced precision: the loss after N L-BFGS (or ``--optimizer adam``) steps against fp32, per ``--fp32-finish``.

The issue-15 criterion for Gatys in bf16 is a loss after 100 L-BFGS steps within 1 % of
the fp32 run's. L-BFGS on this non-convex objective is itself chaotic: starting the fp32
run from the content image plus noise of 1e-4 (far below an 8-bit pixel step) moves its
loss after 100 steps by about 1 %. So every configuration runs from ``--seeds`` starts (the
content image, then the content plus ``--jitter`` Gaussian noise under seeds 1, 2, ...),
and the table compares mean losses, with the spread beside them.

Rows: fp32, then ``--precision bf16`` with each ``--fp32-finish`` share (the last share of
the steps run VGG19 in fp32; see ``styleforge.gatys.torch_engine.TorchEngine.optimize``). Every
final image is scored by the same fp32 objective, so bf16's own rounding of the loss does
not flatter it. Random He-initialised VGG19 unless ``--weights``. With the emulation,
``--ablate`` adds rows rounding only the forward or only the backward pass, and
``--forward-finishes`` rows whose finish returns only the forward pass to fp32 (a
design the product does not have yet: it would keep the backward's bf16 speed).

Speed is not measured here (``benchmarks/gatys.py`` times each precision): on a CPU
without native bf16, PyTorch emulates bf16 convolutions about 40x slower than fp32, so
by default this script emulates bf16 autocast's arithmetic instead (``--emulate auto``):
under bf16 autocast each VGG19 convolution rounds its input, weights, bias and output to
bf16 and accumulates in fp32, as oneDNN's bf16 kernels (AMX, AVX512-BF16) are specified
to, and its backward rounds the incoming gradient and the input gradient to bf16 the
same way; everything else is the product's own code path. The forward matches PyTorch's
CPU bf16 convolution bit for bit in > 99 % of outputs; PyTorch's CPU backward without
AMX rounds more than once (its error against fp32 is about 1.7x one rounding's), so
``--emulate off``, which runs PyTorch's own kernels, is if anything harsher on bf16
(tests/test_benchmark_scripts.py).

    python benchmarks/gatys_fidelity.py --size 128 --iterations 100 --seeds 5 \\
        --finishes 0,0.2,0.3,0.4,0.5 --json docs/benchmarks/gatys-fidelity-cpu.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from classify import random_imagenet_vgg  # noqa: E402
from common import environment, is_native, print_table, write_json  # noqa: E402

from styleforge.config import GatysOptions  # noqa: E402
from styleforge.gatys.engine import ScaleProblem  # noqa: E402
from styleforge.gatys.torch_engine import TorchEngine, reduced_precision_steps  # noqa: E402
from styleforge.images.io import image_to_array, read_image, resize_long_side  # noqa: E402
from styleforge.vgg.network import load_vgg19  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: How the table names each optimiser.
OPTIMIZER_NAMES = {"lbfgs": "L-BFGS", "adam": "Adam"}


# ------------------------------------------------------------ bf16 autocast, emulated


#: The passes the emulation rounds to bf16, under bf16 autocast and outside it (the fp32
#: finish). Rows of ``--ablate`` and ``--forward-finishes`` change them; by default nothing
#: outside autocast is rounded.
ROUNDING: dict[str, frozenset[str]] = {"bf16": frozenset({"forward", "backward"}), "fp32": frozenset()}


def unchanged(t: torch.Tensor) -> torch.Tensor:
    """``t`` itself (the rounding of a pass the emulation leaves in fp32)."""
    return t


def to_bf16_grid(t: torch.Tensor) -> torch.Tensor:
    """``t`` rounded to the nearest bf16 value (round to nearest even), kept in fp32."""
    return t.to(torch.bfloat16).float()


class RoundedConv2d(torch.autograd.Function):
    """A stride-1 conv2d with bf16 operands and result, accumulated in fp32.

    The gradient with respect to the input is formed the same way: bf16 incoming
    gradient and weights, fp32 accumulation, bf16 result. ``passes`` says which of the
    two are rounded ("forward", "backward"); weights take no gradient (VGG19 is frozen
    in Gatys).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, padding: tuple[int, int],  # type: ignore[override]
                passes: frozenset[str]) -> torch.Tensor:
        rounded = to_bf16_grid if "forward" in passes else unchanged
        ctx.save_for_backward(to_bf16_grid(weight) if "backward" in passes else weight)
        ctx.padding, ctx.input_shape, ctx.round_grad = padding, x.shape, "backward" in passes
        return rounded(F.conv2d(rounded(x), rounded(weight), rounded(bias), padding=padding))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        (weight,) = ctx.saved_tensors
        rounded = to_bf16_grid if ctx.round_grad else unchanged
        grad_input = torch.nn.grad.conv2d_input(ctx.input_shape, weight, rounded(grad), padding=ctx.padding)
        return rounded(grad_input), None, None, None, None


def _emulated_forward(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    in_bf16 = torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    passes = ROUNDING["bf16" if in_bf16 else "fp32"]
    if not passes:
        return conv._conv_forward(x, conv.weight, conv.bias)
    with torch.autocast("cpu", enabled=False):
        return RoundedConv2d.apply(x.float(), conv.weight, conv.bias, conv.padding, passes)


def emulate_bf16_convolutions(model: nn.Module) -> None:
    """Make ``model``'s convolutions emulate CPU bf16 autocast with fp32 kernels
    (:class:`RoundedConv2d`) whenever bf16 autocast is on; outside it they are unchanged
    unless :data:`ROUNDING` says otherwise."""
    for conv in (m for m in model.modules() if isinstance(m, nn.Conv2d)):
        if conv.stride != (1, 1) or conv.dilation != (1, 1) or conv.groups != 1 or conv.padding_mode != "zeros":
            raise ValueError("the bf16 emulation covers VGG19's stride-1, zero-padded convolutions only")
        conv.forward = partial(_emulated_forward, conv)  # type: ignore[method-assign]


# ------------------------------------------------------------------------------ runs


def start_image(content: np.ndarray, seed: int, jitter: float) -> np.ndarray:
    """The content image, plus ``jitter`` x N(0, 1) noise drawn with ``seed`` when seed > 0."""
    if seed == 0:
        return content
    noise = np.random.default_rng(seed).standard_normal(content.shape).astype(np.float32)
    return (content + jitter * noise).astype(np.float32)


def fp32_loss(scorer: TorchEngine, problem: ScaleProblem, image: np.ndarray) -> float:
    """The fp32 objective of ``image`` (targets in fp32 too)."""
    with torch.no_grad():
        targets = scorer.targets(problem, "fp32")
        return float(scorer.losses(torch.from_numpy(image), *targets, "fp32")["total"])


def final_losses(vgg: nn.Module, problems: list[ScaleProblem], opts: GatysOptions, scorer: TorchEngine,
                 rounding: dict[str, frozenset[str]]) -> list[float]:
    """For each start in ``problems``: optimise with ``opts``, return the best image's fp32
    loss; ``rounding`` is the emulation's :data:`ROUNDING` for these runs (when installed)."""
    losses, default = [], dict(ROUNDING)
    ROUNDING.update(rounding)
    try:
        for problem in problems:
            engine = TorchEngine(vgg, opts, torch.device("cpu"))
            image, _ = engine.optimize(problem, opts.iterations, lambda *_: None)
            losses.append(fp32_loss(scorer, problem, image))
    finally:
        ROUNDING.update(default)
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None, help="cache name or file (default: random full-size weights)")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs",
                        help="the optimiser of every row (GatysOptions.optimizer, with its default learning rate)")
    parser.add_argument("--seeds", type=int, default=5, help="starts per configuration")
    parser.add_argument("--jitter", type=float, default=1e-4, help="noise added to the content image for seeds > 0")
    parser.add_argument("--finishes", default="0,0.2,0.3,0.4,0.5", help="--fp32-finish shares of the bf16 rows")
    parser.add_argument("--emulate", choices=("auto", "on", "off"), default="auto",
                        help="emulate bf16 with fp32 kernels (auto: when the CPU lacks native bf16)")
    parser.add_argument("--ablate", action="store_true",
                        help="with the emulation, add bf16 rows (no fp32 finish) that round only the forward or only the backward pass")
    parser.add_argument("--forward-finishes", default="",
                        help="with the emulation, add rows whose finish (these shares) returns only the forward to fp32 "
                             "and keeps the backward in bf16, e.g. 0.3,0.5")
    parser.add_argument("--content", default=str(EXAMPLES / "chelsea.jpg"))
    parser.add_argument("--style", default=str(EXAMPLES / "coffee.jpg"))
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    cpu = torch.device("cpu")
    vgg = load_vgg19(args.weights) if args.weights else random_imagenet_vgg()
    emulated = args.emulate == "on" or (args.emulate == "auto" and not is_native(cpu, "bf16"))
    if emulated:
        emulate_bf16_convolutions(vgg)
    content = image_to_array(resize_long_side(read_image(args.content), args.size))
    style = image_to_array(resize_long_side(read_image(args.style), args.size))
    problems = [ScaleProblem(content, [style], start_image(content, seed, args.jitter)) for seed in range(args.seeds)]
    base = GatysOptions(size=args.size, iterations=args.iterations, device="cpu", optimizer=args.optimizer, precision="fp32")
    scorer = TorchEngine(vgg, base, cpu)

    def bf16(share: float) -> GatysOptions:
        return GatysOptions(size=args.size, iterations=args.iterations, device="cpu", optimizer=args.optimizer,
                            precision="bf16", fp32_finish=share)

    default = dict(ROUNDING)
    configs = [("fp32", base, default)] + [(f"bf16, fp32 finish {share:g}", bf16(share), default)
                                            for share in (float(s) for s in args.finishes.split(","))]
    if (args.ablate or args.forward_finishes) and not emulated:
        parser.error("--ablate and --forward-finishes need the emulation (--emulate on)")
    if args.ablate:
        configs += [(f"bf16 {only} rounding only", bf16(0.0), {**default, "bf16": frozenset({only})})
                    for only in ("forward", "backward")]
    configs += [(f"bf16, fp32-forward finish {share:g}", bf16(share), {**default, "fp32": frozenset({"backward"})})
                for share in (float(s) for s in args.forward_finishes.split(",") if s)]
    rows, reference = [], None
    for name, opts, rounding in configs:
        started = time.perf_counter()
        losses = final_losses(vgg, problems, opts, scorer, rounding)
        mean = statistics.mean(losses)
        reference = reference or mean
        rows.append({
            "config": name, "precision": opts.precision, "fp32_finish": opts.fp32_finish if opts.precision != "fp32" else None,
            "bf16_steps": reduced_precision_steps(args.iterations, opts.precision, opts.fp32_finish), "losses": losses, "mean_loss": mean,
            "sd_pct": 100 * statistics.stdev(losses) / reference if len(losses) > 1 else None,
            "vs_fp32_pct": 100 * (mean / reference - 1),
        })
        print(f"  {name}: {mean:.5g} ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    print(f"Gatys, {args.size} px, {args.iterations} {OPTIMIZER_NAMES[args.optimizer]} steps, {args.seeds} starts; "
          f"bf16 {'emulated with fp32 kernels' if emulated else 'native kernels'}; weights: {args.weights or 'random (He init)'}")
    print_table(rows, [("config", "configuration", "s"), ("bf16_steps", "bf16 steps", "d"), ("mean_loss", "mean loss", ".5g"),
                       ("sd_pct", "spread (sd) %", ".2f"), ("vs_fp32_pct", "vs fp32 %", "+.2f")])
    write_json(args.json, {"benchmark": "gatys_fidelity", "environment": {**environment(cpu), "bf16": "emulated" if emulated else "native"},
                           "args": vars(args), "results": rows})


if __name__ == "__main__":
    main()
