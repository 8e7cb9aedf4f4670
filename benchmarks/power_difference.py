"""PowerDifference against the expression it replaces, at the style network's shapes.

For each place styleforge squares a difference in training at batch 4, 256 px (the 15
instance-norm variances' three sizes, the content loss at relu4_2, the style loss's
Gram matrices, total variation), this times forward and forward+backward of
``power_difference(x, y, 2)`` and of ``(x - y) ** 2`` in the same run, and measures what
each keeps for backward beyond its inputs (tensors saved by autograd: the expression
keeps the ``x - y`` intermediate, the operator only ``x`` and ``y``). The floor beside
each row is copying the output once (``torch.Tensor.copy_``): the op reads x and y and
writes the output, so it cannot beat a copy of that size. On CUDA, peak allocated
memory is reported too.

    python benchmarks/power_difference.py [--device cpu|cuda] [--json bench-results/power-difference-cpu.json]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, median, print_table, time_call, write_json

import styleforge.ops as ops
from styleforge.ops import power_difference

#: (name, x shape, y shape, whether y needs a gradient) at batch 4, 256 px, as in training:
#: the instance-norm mean and TV's neighbours do, the content and style targets do not.
CASES = [
    ("instance norm 32x256x256", (4, 32, 256, 256), (4, 32, 1, 1), True),
    ("instance norm 64x128x128", (4, 64, 128, 128), (4, 64, 1, 1), True),
    ("instance norm 128x64x64", (4, 128, 64, 64), (4, 128, 1, 1), True),
    ("content relu4_2 512x32x32", (4, 512, 32, 32), (4, 512, 32, 32), False),
    ("style Gram 512x512", (4, 512, 512), (1, 512, 512), False),
    ("style Gram 64x64", (4, 64, 64), (1, 64, 64), False),
    ("total variation 3x255x256", (4, 3, 255, 256), (4, 3, 255, 256), True),
]


def saved_megabytes(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> float:
    """MB autograd keeps for backward beyond the inputs themselves."""
    inputs = {x.untyped_storage().data_ptr(), y.untyped_storage().data_ptr()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in inputs:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(x, y)
    return sum(saved.values()) / 2**20


def run_case(name: str, xs: tuple, ys: tuple, y_grad: bool, device: torch.device, repeats: int) -> list[dict]:
    """Rows for the operator and the expression on one case."""
    x = torch.randn(xs, device=device, requires_grad=True)
    y = torch.randn(ys, device=device, requires_grad=y_grad)
    out, source = (torch.empty(torch.broadcast_shapes(xs, ys), device=device) for _ in range(2))
    floor = median(time_call(lambda: out.copy_(source), device, 2, repeats))
    rows = []
    for label, fn in (("power_difference", lambda a, b: power_difference(a, b, 2.0)), ("(x - y) ** 2", lambda a, b: (a - b) ** 2)):
        def forward(fn: Callable = fn) -> None:
            with torch.no_grad():
                fn(x, y)

        def both(fn: Callable = fn) -> None:
            fn(x, y).sum().backward()

        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        fwd = median(time_call(forward, device, 2, repeats))
        fwd_bwd = median(time_call(both, device, 2, repeats))
        peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
        rows.append({"case": name, "path": label, "forward_ms": 1000 * fwd, "forward_backward_ms": 1000 * fwd_bwd,
                     "saved_mb": saved_megabytes(fn, x, y), "copy_floor_ms": 1000 * floor, "peak_mb": peak})
    return rows


def main() -> None:
    """Parse arguments, run every case, print the table and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    rows = [row for name, xs, ys, y_grad in CASES for row in run_case(name, xs, ys, y_grad, device, args.repeats)]
    columns = [("case", "case", "s"), ("path", "path", "s"), ("forward_ms", "fwd ms", ".2f"),
               ("forward_backward_ms", "fwd+bwd ms", ".2f"), ("saved_mb", "saved MB", ".1f"), ("copy_floor_ms", "copy floor ms", ".2f")]
    if device.type == "cuda":
        columns.append(("peak_mb", "peak MB", ".0f"))
    kernel = ops.CUDA_KERNEL if device.type == "cuda" else ops.KERNEL
    print(f"power_difference kernel on {device.type}: {kernel}")
    print_table(rows, columns)
    write_json(args.json, {"environment": environment(device), "kernel": kernel, "rows": rows})


if __name__ == "__main__":
    main()
