"""Building the ONNX Runtime custom-op library (``csrc/ort_power_difference.cc``).

ONNX Runtime's C/C++ API headers (``onnxruntime_c_api.h``, ``onnxruntime_cxx_api.h``,
``onnxruntime_lite_custom_op.h``) are not in the ``onnxruntime`` wheel. They are looked
for in ``$STYLEFORGE_ORT_INCLUDE``, then in ``<styleforge cache>/onnxruntime-include``
(where ``scripts/fetch-onnxruntime-headers`` puts them), then in ``/usr/include/onnxruntime``
(Debian 13 / Ubuntu ``libonnxruntime-dev``). ``.ci/run`` extracts them from Debian's
``libonnxruntime-dev`` package (checksum-verified) and sets the variable; see
docs/power-difference.md for doing the same by hand.

The library uses ``ORT_API_MANUAL_INIT`` (the API table comes from the loading runtime,
so it links against nothing) and is compiled once with the system C++ compiler into
the ops cache (:func:`~styleforge.ops.native.ops_cache_dir`), keyed by a hash of the
source and the headers. Without headers or a compiler, :func:`ort_library_path`
returns None and the Python kernel serves instead.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from styleforge.ops.native import CSRC, native_disabled, ops_cache_dir

SOURCE = CSRC / "ort_power_difference.cc"
HEADER = "onnxruntime_cxx_api.h"
SYSTEM_INCLUDES = (Path("/usr/include/onnxruntime"), Path("/usr/local/include/onnxruntime"))


def ort_include_dir() -> Path | None:
    """The folder holding ONNX Runtime's C++ API headers, or None."""
    from styleforge.utils.home import styleforge_home

    candidates = [Path(os.environ["STYLEFORGE_ORT_INCLUDE"])] if os.environ.get("STYLEFORGE_ORT_INCLUDE") else []
    for folder in [*candidates, styleforge_home() / "onnxruntime-include", *SYSTEM_INCLUDES]:
        if (folder / HEADER).is_file():
            return folder
    return None


def ort_library_path() -> Path | None:
    """The built custom-op library (building it on first use), or None when it cannot be."""
    if native_disabled():
        return None
    include = ort_include_dir()
    compiler = shutil.which(os.environ.get("CXX", "c++"))
    if include is None or compiler is None:
        return None
    digest = hashlib.sha256(SOURCE.read_bytes() + (include / HEADER).read_bytes()).hexdigest()[:16]
    library = ops_cache_dir() / f"styleforge_ort_ops-{digest}.so"
    if library.is_file():
        return library
    library.parent.mkdir(parents=True, exist_ok=True)
    partial = library.with_suffix(f".{os.getpid()}.part")
    command = [compiler, "-std=c++17", "-O3", "-fPIC", "-shared", f"-I{include}", str(SOURCE), "-o", str(partial)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        reason = " ".join(done.stderr.split())[:200]
        print(f"styleforge: the ONNX Runtime custom-op library could not be built ({reason}); using the Python kernel",
              file=sys.stderr, flush=True)
        partial.unlink(missing_ok=True)
        return None
    os.replace(partial, library)  # atomic: a parallel build yields the same file
    return library
