"""NumPy engine kernels: naive loops vs fast (im2col / strided views) vs PyTorch CPU fp32.

For convolution and max pooling, forward and backward, at the course's test shape
(1x256x24x40, 256 -> 256 channels, 3x3, padding 1; pooling 2x2) and at VGG19 shapes
(conv3_1-like 1x256x64x64 -> 256, conv1_2 1x64x128x128 -> 64, pool1 1x64x224x224):
median milliseconds, speed-ups and the largest absolute difference between the
implementations' outputs and input gradients.

    python benchmarks/numpy_engine.py --json bench-results/numpy-engine.json
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, print_table, write_json  # noqa: E402

from styleforge.numpy_engine import Conv2d, MaxPool2d  # noqa: E402

CASES = [
    # name, kind, input shape, output channels (conv)
    ("course conv", "conv", (1, 256, 24, 40), 256),
    ("conv3_1", "conv", (1, 256, 64, 64), 256),
    ("conv1_2", "conv", (1, 64, 128, 128), 64),
    ("course pool", "pool", (1, 256, 24, 40), None),
    ("pool1", "pool", (1, 64, 224, 224), None),
]


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Median seconds over ``repeats`` calls (after one warm-up) and the last result."""
    result = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


def run_case(name: str, kind: str, shape: tuple[int, ...], c_out: int | None, repeats: int, naive_repeats: int) -> list[dict]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32)
    if kind == "conv":
        layers = {impl: Conv2d(shape[1], c_out, 3, stride=1, padding=1, impl=impl, rng=np.random.default_rng(1)) for impl in ("naive", "fast")}
        layers["naive"].bias = layers["fast"].bias = rng.standard_normal(c_out, dtype=np.float32)
        weight = torch.from_numpy(layers["fast"].weight)
        bias = torch.from_numpy(layers["fast"].bias)

        def torch_forward(t: torch.Tensor) -> torch.Tensor:
            return F.conv2d(t, weight, bias, padding=1)

        weight.requires_grad_(True)
        bias.requires_grad_(True)
    else:
        layers = {impl: MaxPool2d(2, 2, impl=impl) for impl in ("naive", "fast")}

        def torch_forward(t: torch.Tensor) -> torch.Tensor:
            return F.max_pool2d(t, 2, 2)

    y = layers["fast"].forward(x)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    results: dict[str, dict[str, object]] = {}
    for impl, layer in layers.items():
        reps = naive_repeats if impl == "naive" else repeats
        fwd, out = timed(lambda layer=layer: layer.forward(x), reps)
        bwd, grad = timed(lambda layer=layer: layer.backward(dy), reps)
        results[impl] = {"forward": fwd, "backward": bwd, "out": out, "grad": grad}

    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    dyt = torch.from_numpy(dy)

    def torch_fwd() -> torch.Tensor:
        with torch.no_grad():
            return torch_forward(xt)

    def torch_bwd() -> torch.Tensor:
        # time the backward alone: rebuild the graph outside the timed region is not possible
        # with autograd, so time forward+backward and subtract the forward time
        xt.grad = None
        torch_forward(xt).backward(dyt)
        return xt.grad

    fwd, out = timed(torch_fwd, repeats)
    both, grad = timed(torch_bwd, repeats)
    results["torch"] = {"forward": fwd, "backward": max(both - fwd, 1e-9), "out": out.numpy(), "grad": grad.numpy()}

    rows = []
    for impl in ("naive", "fast", "torch"):
        r = results[impl]
        ref = results["fast"]
        rows.append({
            "case": name, "shape": "x".join(map(str, shape)) + (f"->{c_out}" if c_out else ""), "impl": impl,
            "forward_ms": 1000 * r["forward"], "backward_ms": 1000 * r["backward"],
            "fwd_speedup_vs_naive": results["naive"]["forward"] / r["forward"],
            "bwd_speedup_vs_naive": results["naive"]["backward"] / r["backward"],
            "fwd_bwd_vs_torch": (r["forward"] + r["backward"]) / (results["torch"]["forward"] + results["torch"]["backward"]),
            "max_abs_diff_vs_fast": max(float(np.abs(r["out"] - ref["out"]).max()), float(np.abs(r["grad"] - ref["grad"]).max())),
        })
        print(f"  {name} {impl}: fwd {1000 * r['forward']:.1f} ms, bwd {1000 * r['backward']:.1f} ms", file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of the fast and torch paths")
    parser.add_argument("--naive-repeats", type=int, default=1, help="timed runs of the (slow) naive path")
    parser.add_argument("--cases", default=",".join(c[0] for c in CASES), help="comma-separated case names")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    wanted = set(args.cases.split(","))
    rows = []
    for case in CASES:
        if case[0] in wanted:
            rows += run_case(*case, repeats=args.repeats, naive_repeats=args.naive_repeats)
    print(f"NumPy engine kernels, float32, median of {args.repeats} runs ({args.naive_repeats} for naive); "
          f"torch backward = (forward+backward) - forward")
    print_table(rows, [
        ("case", "case", "s"), ("shape", "shape", "s"), ("impl", "impl", "s"),
        ("forward_ms", "fwd ms", ".2f"), ("backward_ms", "bwd ms", ".2f"),
        ("fwd_speedup_vs_naive", "fwd x naive", ".1f"), ("bwd_speedup_vs_naive", "bwd x naive", ".1f"),
        ("fwd_bwd_vs_torch", "fwd+bwd / torch", ".2f"), ("max_abs_diff_vs_fast", "max |diff| vs fast", ".1e"),
    ])
    write_json(args.json, {"benchmark": "numpy_engine", "environment": environment(torch.device("cpu")),
                           "args": vars(args), "results": rows})


if __name__ == "__main__":
    main()
