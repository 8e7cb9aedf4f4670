"""Device selection: ``auto`` means CUDA when available, else CPU; never assumes a GPU."""

from __future__ import annotations

import contextlib
from typing import ContextManager

import torch

from styleforge.config import DEVICE_CHOICES, PRECISION_CHOICES
from styleforge.errors import StyleforgeError


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """Turn ``auto``/``cpu``/``cuda``/``cuda:N`` into a usable ``torch.device``.

    Args:
        name: the requested device.

    Returns:
        The device to use.

    Raises:
        StyleforgeError: CUDA asked for but not available, or an unknown name.
    """
    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise StyleforgeError(
                "--device cuda was requested but CUDA is not available "
                f"(PyTorch {torch.__version__}, built with CUDA: {torch.version.cuda or 'no'}); use --device cpu or auto"
            )
        return torch.device(name)
    raise StyleforgeError(f"unknown device {name!r}; use one of {', '.join(DEVICE_CHOICES)}")


def describe_device(device: torch.device) -> str:
    """Return a one-line description, e.g. ``cuda:0 (NVIDIA H100)`` or ``cpu (8 threads)``."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels on ``device`` (so wall-clock timings are true)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, precision: str) -> ContextManager[object]:
    """Return the autocast context for ``precision`` on ``device`` (a no-op for fp32).

    Raises:
        StyleforgeError: unknown precision, or fp16 asked for on the CPU.
    """
    if precision not in PRECISION_CHOICES:
        raise StyleforgeError(f"unknown precision {precision!r}; use one of {', '.join(PRECISION_CHOICES)}")
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "fp16" and device.type != "cuda":
        raise StyleforgeError("fp16 needs CUDA; on the CPU use --precision bf16 (or fp32)")
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def cpu_has_bf16() -> bool:
    """True when the CPU has native bf16 arithmetic (AMX or AVX512-BF16; read from /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as handle:
            flags = handle.read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def auto_precision(device: torch.device, training: bool = False) -> str:
    """The fastest precision that stays faithful on ``device``.

    Inference: fp16 on CUDA (>= 50 dB PSNR against fp32 in ``benchmarks/transfer.py``, and
    the fastest eager path at 1920x1080 on an H100).
    Training: bf16 on CUDA when supported (no loss scaling needed), else fp16 with a
    gradient scaler. CPU, both: bf16 where the CPU has native bf16, else fp32.
    """
    if device.type == "cuda":
        if training and torch.cuda.is_bf16_supported():
            return "bf16"
        return "fp16"
    return "bf16" if cpu_has_bf16() else "fp32"


def resolve_precision(precision: str, device: torch.device, training: bool = False) -> str:
    """Turn ``auto`` into a concrete precision for ``device``; others pass through once
    :func:`autocast` accepts them there (raises StyleforgeError otherwise)."""
    concrete = auto_precision(device, training) if precision == "auto" else precision
    autocast(device, concrete)
    return concrete
