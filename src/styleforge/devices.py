"""Device selection: ``auto`` means CUDA when available, else CPU; never assumes a GPU."""

from __future__ import annotations

import contextlib
import os
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


#: Overrides the CPU's native-bf16 detection: ``1`` (treat it as native), ``0`` (as
#: emulated). For a virtual machine whose /proc/cpuinfo hides flags the host has, for
#: forcing the fp32 defaults, and for the tests, which run both branches on every CPU.
NATIVE_BF16_ENV = "STYLEFORGE_NATIVE_BF16"


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where it cannot be read)."""
    return frozenset(_cpuinfo_field("flags").split())


def cpu_model_name() -> str:
    """The CPU's model name from /proc/cpuinfo (empty where it cannot be read)."""
    return _cpuinfo_field("model name").strip()


def _cpuinfo_field(name: str) -> str:
    """The value of the first ``name`` line of /proc/cpuinfo ('' where there is none)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith(name):
                    return line.partition(":")[2]
    except OSError:
        pass
    return ""


def cpu_has_bf16() -> bool:
    """True when the CPU has native bf16 arithmetic: AMX-BF16 or AVX512-BF16, read from the
    feature flags (not guessed from the vendor); ``STYLEFORGE_NATIVE_BF16=1|0`` overrides.

    Raises:
        StyleforgeError: the override is set to something other than 1 or 0.
    """
    override = os.environ.get(NATIVE_BF16_ENV, "").strip()
    if override:
        if override not in ("0", "1"):
            raise StyleforgeError(f"{NATIVE_BF16_ENV}={override!r}: use 1 (native bf16) or 0 (emulated), or unset it")
        return override == "1"
    return flags_have_native_bf16()


def flags_have_native_bf16() -> bool:
    """True when the CPU's own flags name AMX-BF16 or AVX512-BF16 (no override applied)."""
    return not cpu_flags().isdisjoint({"amx_bf16", "avx512_bf16"})


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


def vgg_memory_format(device: torch.device, precision: str) -> torch.memory_format:
    """The memory format VGG19 should hold its weights in for losses on ``device`` in
    ``precision``: channels_last on CUDA (tensor cores) and in reduced precision on the
    CPU, where oneDNN's bf16 kernels otherwise reorder every NCHW activation (a Johnson
    training step at batch 4, 256 px: 1.64 -> 1.11 s on an AMX Xeon);
    contiguous NCHW for fp32 on the CPU, which measured no faster in channels_last and so
    stays bit-identical to a plain loop (benchmarks/train.py, benchmarks/gatys.py)."""
    return torch.channels_last if device.type == "cuda" or precision != "fp32" else torch.contiguous_format
