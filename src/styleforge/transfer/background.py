"""The background conversion ``transfer --runtime auto`` starts after a job too small to
repay converting its model to OpenVINO (:mod:`styleforge.transfer.runtimes`): convert and
cache the copy, then time both runtimes on this machine, so the next run chooses from
measurements.

    python -m styleforge.transfer.background MODEL OPTIONS-JSON MARKER

It runs detached and niced, prints nothing, and removes ``MARKER`` (the file saying a
conversion is under way) when it ends, whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

#: The size both runtimes are timed at (a photo's typical working size).
TIMING_SIDE = 512


def measure(model_file: str, options: dict) -> None:
    """Convert ``model_file``'s network as ``options`` configure it, if not cached, and
    record this machine's timings of it (:class:`~styleforge.transfer.runtimes.Timings`)."""
    started = time.perf_counter()
    import openvino  # noqa: F401 (timed: part of every later start)

    import_seconds = time.perf_counter() - started
    import torch

    from styleforge.config import TransferOptions
    from styleforge.transfer.model import load_style_model
    from styleforge.transfer.runtimes import copy_of, openvino_forward

    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    model = load_style_model(model_file, options=TransferOptions(**fields))
    copy = copy_of(model.net)
    openvino_forward(model, copy)  # converts (recording the first use) when not cached
    begin = time.perf_counter()
    forward, _ = openvino_forward(model, copy)  # a start from the caches, as later runs start
    copy.record(start=import_seconds + time.perf_counter() - begin)
    x = (torch.rand(1, 3, TIMING_SIDE, TIMING_SIDE) * 255).contiguous(memory_format=model.memory_format)
    area = TIMING_SIDE * TIMING_SIDE / 1e6
    with torch.inference_mode():
        copy.record(pytorch=_best_of(lambda: model.net(x), 3) / area, openvino=_best_of(lambda: forward(x), 3) / area)


def _best_of(call: object, repeats: int) -> float:
    call()  # the first call sets up kernels
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str]) -> int:
    """Run :func:`measure` for ``MODEL OPTIONS-JSON MARKER``; returns the exit status."""
    model_file, options, marker = argv
    with contextlib.suppress(OSError):
        os.nice(10)
    try:
        measure(model_file, json.loads(options))
    except Exception:  # noqa: BLE001 (nobody reads a detached process: the next run converts itself)
        return 1
    finally:
        Path(marker).unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
