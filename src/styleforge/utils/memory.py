"""Keep freed memory for reuse instead of handing it back to the kernel (glibc malloc).

glibc serves every allocation above its mmap threshold (at most 32 MB) with a fresh
``mmap`` and unmaps it again on ``free``. The feature maps of style networks are that
large (a 64-channel map at 512 x 512 px is 67 MB), so every layer of every call writes
to new pages, and the kernel zero-fills them one 4 KB page fault at a time. On a 2-core
Zen 3 in fp32 that fault traffic was a fifth to a quarter of the time (peak memory in
brackets):

========================================  ===================  ===========================
                                          glibc default        freed memory kept for reuse
========================================  ===================  ===========================
feed-forward network, 512 px, batch 1     750 ms (479 MB)      540 ms (462 MB)
Gatys step (VGG19 forward + backward)     2.9 s (1153 MB)      2.4 s (1353 MB)
Johnson training step, batch 4, 256 px    6.9 s (2398 MB)      5.4 s (2545 MB)
========================================  ===================  ===========================

:func:`reuse_freed_memory` tells glibc to serve large blocks from its heap
(``M_MMAP_MAX = 0``) and to keep freed memory rather than trim it
(``M_TRIM_THRESHOLD``), the effect jemalloc or tcmalloc have, which PyTorch's CPU
performance guides recommend preloading. The price: the process keeps its peak memory
after a large image instead of returning it (a long-running server keeps it anyway), and
the heap may grow by a few blocks before freed ones fit new requests (up to 17 % more
peak memory above).
The ``styleforge`` command calls it at start-up; Python users may call it themselves.
"""

from __future__ import annotations

import ctypes
import os
import platform

from styleforge.errors import StyleforgeError

#: mallopt parameters (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
#: Freed memory at the top of the heap is returned to the kernel only above this (2 GiB).
TRIM_THRESHOLD = 2**31 - 1
#: ``system`` here leaves malloc as the C library configured it (default ``reuse``).
ALLOCATOR_VARIABLE = "STYLEFORGE_ALLOCATOR"
ALLOCATOR_CHOICES = ("reuse", "system")


def reuse_freed_memory() -> bool:
    """Configure glibc malloc to keep large freed blocks for reuse (see the module text).

    Does nothing, and returns False, when ``STYLEFORGE_ALLOCATOR=system`` is set, when
    ``GLIBC_TUNABLES`` already sets malloc parameters (the user chose), or when the C
    library is not glibc (musl, macOS, Windows). Returns True once applied.

    Raises:
        StyleforgeError: ``STYLEFORGE_ALLOCATOR`` is set to something other than
            ``reuse`` or ``system``.
    """
    choice = os.environ.get(ALLOCATOR_VARIABLE, "reuse").strip().lower()
    if choice not in ALLOCATOR_CHOICES:
        raise StyleforgeError(f"{ALLOCATOR_VARIABLE}={os.environ[ALLOCATOR_VARIABLE]!r} is not one of "
                              f"{', '.join(ALLOCATOR_CHOICES)}; unset it to keep freed memory for reuse")
    if choice == "system":
        return False
    if "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # mallopt returns 1 on success.
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
