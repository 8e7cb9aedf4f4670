"""Building and loading styleforge's native operator library with ``torch.utils.cpp_extension``.

The C++ sources under ``ops/csrc`` are compiled on first use (ninja, about 30 s on two
cores) into ``$STYLEFORGE_OPS_CACHE`` (default: ``<styleforge cache>/ops``), one folder
per torch version and Python, and loaded from there afterwards. Where a GPU and a CUDA
toolkit are present, the CUDA kernel is compiled into the same library; ``cpp_extension``
rebuilds when a source changes and holds a file lock while building, so parallel
processes do not collide. ``STYLEFORGE_NATIVE_OPS=0`` skips the native library.

When no compiler (or no ninja) is available, :func:`load_native_library` says why on
stderr once and returns False: the callers then register the same operators in pure
PyTorch, with the same results (tested).
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from pathlib import Path

import torch

CSRC = Path(__file__).resolve().parent / "csrc"
SOURCES = ("power_difference.cpp",)
CUDA_SOURCES = ("power_difference_cuda.cu",)
LIBRARY = "styleforge_ops"


def cuda_buildable() -> bool:
    """True when a GPU and a CUDA toolkit (nvcc) are present: the CUDA kernel is built too."""
    from torch.utils.cpp_extension import CUDA_HOME

    return torch.cuda.is_available() and CUDA_HOME is not None and (Path(CUDA_HOME) / "bin" / "nvcc").exists()


def ops_cache_dir() -> Path:
    """Where the compiled library lives: ``$STYLEFORGE_OPS_CACHE/<torch>-py<X.Y>``."""
    from styleforge.utils.home import styleforge_home

    root = Path(os.environ["STYLEFORGE_OPS_CACHE"]).expanduser() if os.environ.get("STYLEFORGE_OPS_CACHE") \
        else styleforge_home() / "ops"
    tag = f"torch{torch.__version__.replace('+', '_')}-py{platform.python_version_tuple()[0]}{platform.python_version_tuple()[1]}"
    return root / tag


#: Compiler flags per PyTorch CPU capability: ATen's Vectorized<T> picks its AVX2/AVX-512
#: implementation from the CPU_CAPABILITY_* macro (without one it is a scalar loop).
CAPABILITY_FLAGS = {
    "AVX512": ["-DCPU_CAPABILITY_AVX512", "-DCPU_CAPABILITY=AVX512", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma"],
    "AVX2": ["-DCPU_CAPABILITY_AVX2", "-DCPU_CAPABILITY=AVX2", "-mavx2", "-mfma", "-mf16c"],
}


def capability_flags() -> tuple[str, list[str]]:
    """(capability name, compiler flags) for this CPU as PyTorch sees it."""
    capability = torch.backends.cpu.get_cpu_capability()
    return capability, CAPABILITY_FLAGS.get(capability, [])


def native_disabled() -> bool:
    """True when ``STYLEFORGE_NATIVE_OPS=0`` asks for the pure-PyTorch operators."""
    return os.environ.get("STYLEFORGE_NATIVE_OPS", "1").strip() in ("0", "false", "no", "off")


def load_native_library() -> tuple[bool, bool]:
    """Build (once) and load the kernels: (CPU kernel loaded, CUDA kernel loaded). The
    CUDA kernel is a library of its own, so a failed CUDA build keeps the CPU kernel;
    each failure is one line on stderr."""
    if native_disabled():
        return False, False
    capability, flags = capability_flags()
    cpu = _build_and_load(f"{LIBRARY}_{capability.lower()}", list(SOURCES), ["-O3", *flags])
    cuda = cuda_buildable() and _build_and_load(f"{LIBRARY}_cuda", list(CUDA_SOURCES), ["-O3"])
    return cpu, cuda


def _build_and_load(name: str, sources: list[str], cflags: list[str]) -> bool:
    """``cpp_extension.load`` of ``sources`` as library ``name`` in the ops cache; False on failure."""
    from torch.utils import cpp_extension

    # The folder is keyed by the sources and our headers: cpp_extension's own check
    # hashes the sources only, so an edited header would otherwise load a stale library.
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in [*(CSRC / f for f in sources), *sorted(CSRC.glob("*.h"))]))
    build = ops_cache_dir() / f"{name}-{digest.hexdigest()[:12]}"
    build.mkdir(parents=True, exist_ok=True)
    if not (build / f"{name}.so").exists():
        print(f"styleforge: building the native operator library {name} into {build} (once per torch version, ~30 s)",
              file=sys.stderr, flush=True)
    try:
        cpp_extension.load(
            name=name,
            sources=[str(CSRC / source) for source in sources],
            extra_cflags=cflags,
            extra_cuda_cflags=["-O3"],
            build_directory=str(build),
            is_python_module=False,
            verbose=False,
        )
    except Exception as exc:  # noqa: BLE001 (compiler missing, ninja missing, build error: all mean "fall back")
        reason = " ".join(str(exc).split())[:200]
        print(f"styleforge: the native operator library {name} could not be built ({reason}); using the pure-PyTorch "
              "operator there (same results, slower). Install a C++ compiler and ninja (pip install ninja) for the native one.",
              file=sys.stderr, flush=True)
        return False
    return True
