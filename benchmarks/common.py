"""Shared helpers for the benchmark scripts: timing, tables, JSON output."""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from styleforge.devices import cpu_flags, cpu_model_name
from styleforge.utils.memory import reuse_freed_memory

#: Every benchmark runs with the ``styleforge`` command's malloc setting (freed memory kept
#: for reuse, :mod:`styleforge.utils.memory`), baselines included, unless started with
#: ``STYLEFORGE_ALLOCATOR=system``; the JSON records which.
ALLOCATOR = "reuse" if reuse_freed_memory() else "system"


def time_call(fn: Callable[[], Any], device: torch.device, warmup: int, repeats: int) -> list[float]:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times; returns seconds per call."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def median(values: list[float]) -> float:
    """The median of ``values``."""
    return statistics.median(values)


def environment(device: torch.device) -> dict[str, Any]:
    """Describe the machine a benchmark ran on (stored with the results)."""
    info: dict[str, Any] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_model": cpu_model_name() or platform.processor() or platform.machine(),
        "cpu_features": sorted(cpu_flags() & {"avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16",
                                              "amx_int8", "avx512_fp16"}),
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "device": str(device),
        "allocator": ALLOCATOR,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def matmul_gflops(dtype: torch.dtype, n: int = 4096, repeats: int = 5, device: torch.device = torch.device("cpu")) -> float:
    """Measured ``torch.matmul`` throughput of an n x n product on ``device``, GFLOP/s (median)."""
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    seconds = median(time_call(lambda: torch.matmul(a, b), device, warmup=1, repeats=repeats))
    return 2 * n**3 / seconds / 1e9


#: Benchmark precision names and their tensor types.
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def is_native(device: torch.device, precision: str) -> bool:
    """True when ``device`` computes in ``precision`` natively: fp32 always, fp16 on CUDA,
    bf16 on bf16-capable GPUs and on CPUs with AVX512-BF16/AMX (elsewhere a CPU emulates
    bf16, several times slower than fp32)."""
    if precision == "fp32":
        return True
    if device.type == "cuda":
        return precision == "fp16" or torch.cuda.is_bf16_supported()
    from styleforge.devices import cpu_has_bf16

    return precision == "bf16" and cpu_has_bf16()


def precisions_to_time(device: torch.device, asked: str | None, reduced: int = 2) -> list[str]:
    """``asked`` (comma-separated), else fp32 and up to ``reduced`` precisions the device
    runs natively (bf16 then fp16; emulated bf16 would only measure the emulation)."""
    if asked:
        return asked.split(",")
    native = [p for p in ("bf16", "fp16") if is_native(device, p)]
    return ["fp32", *native[:reduced]]


def _positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def add_matmul_size_argument(parser: argparse.ArgumentParser, default: str) -> None:
    """``--matmul-size N``: the n x n product that measures the machine's rate for the
    floor column (``default`` describes the script's own choice)."""
    parser.add_argument("--matmul-size", type=_positive_int, default=None,
                        help=f"n of the n x n matmul that measures the rate behind the floor (default: {default}); "
                             "smaller runs quicker and measures a lower rate")


def throughputs(device: torch.device, precisions: list[str], n: int = 4096) -> dict[str, float | None]:
    """Measured GFLOP/s of an n x n matmul on ``device`` per precision (printed to stderr
    too); None for a precision the device only emulates (its matmul would take minutes and
    measure the emulation, so such rows get no floor)."""
    rates = {p: matmul_gflops(DTYPES[p], n=n, device=device) if is_native(device, p) else None for p in precisions}
    print("matmul GFLOP/s: " + ", ".join(f"{p} {v:.0f}" if v else f"{p} emulated (not measured)" for p, v in rates.items()),
          file=sys.stderr)
    return rates


def floor(work: float, rates: dict[str, float | None], precision: str) -> float | None:
    """``work`` (GFLOP) over the matmul rate of ``precision`` in ``rates``: the seconds the
    machine's matrix units need at least (None without a measured rate)."""
    rate = rates.get(precision)
    return work / rate if rate else None


def model_gflops(fn: Callable[[], Any]) -> float:
    """Floating-point operations of one call of ``fn`` (convolutions and matmuls), GFLOP."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def print_table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> None:
    """Print ``rows`` as an aligned table; ``columns`` are (key, header, format spec)."""
    cells = [[header for _, header, _ in columns]]
    for row in rows:
        cells.append([format(row[key], spec) if row.get(key) is not None else "-" for key, _, spec in columns])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    for n, line in enumerate(cells):
        print("  ".join(c.rjust(w) if n and i else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths))))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def write_json(path: str | None, payload: dict[str, Any]) -> None:
    """Write ``payload`` as JSON to ``path`` when given."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {path}")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
