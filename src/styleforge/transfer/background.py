"""The background conversion ``transfer --runtime auto`` starts, when its process exits,
after a job that ran in PyTorch with this machine's measurements of the model incomplete
(:mod:`styleforge.transfer.runtimes`): convert and cache the copy, then time PyTorch and
the copy in fp32 and, where the CPU runs it natively, bf16, and take each bf16 path's
PSNR against fp32 on the shipped photos (:mod:`styleforge.images.samples`), so the next
run chooses from measurements.

    python -m styleforge.transfer.background MODEL OPTIONS-JSON MARKER

It runs detached and niced, prints nothing, and removes ``MARKER`` (the file saying a
conversion is under way) when it ends, whatever happens. Its malloc keeps freed memory
for reuse, as in the ``styleforge`` command and the service that read its timings
(:mod:`styleforge.utils.memory`): without that, PyTorch paid a page fault per fresh page
and was timed up to 1.6x slower than those processes run it (magenta-26 at 1024x768 on a
2-core Zen 3: about 800 against 500 ms), so OpenVINO's measured gain was overstated.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from styleforge.utils.memory import reuse_freed_memory

#: The size both runtimes are timed at (a photo's typical working size).
TIMING_SIDE = 512


def measure(model_file: str, options: dict) -> None:
    """Convert ``model_file``'s network as ``options`` configure it, if not cached, and
    record this machine's timings and bf16 fidelity of it in every precision the CPU runs
    natively (:class:`~styleforge.transfer.runtimes.Timings`)."""
    from styleforge.config import TransferOptions
    from styleforge.devices import autocast, cpu_has_bf16
    from styleforge.images.io import read_image
    from styleforge.images.samples import shipped_photos
    from styleforge.images.tensors import images_to_tensor
    from styleforge.transfer.model import load_style_model
    from styleforge.transfer.runtimes import copy_of, openvino_forward, openvino_metadata

    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    model = load_style_model(model_file, options=TransferOptions(**fields))
    copy = copy_of(model.net)
    openvino_forward(model, copy)  # converts (recording the first use) when not cached
    copy.record(start=openvino_start_seconds(copy, openvino_metadata(model.net)))
    x = photo_like(TIMING_SIDE).contiguous(memory_format=model.memory_format)
    shapes = [photo_like(TIMING_SIDE, seed=i)[..., :TIMING_SIDE - 16 * i, :TIMING_SIDE - 8 * i].contiguous(
        memory_format=model.memory_format) for i in range(1, 4)]
    photos = [images_to_tensor([read_image(path)], model.device).contiguous(memory_format=model.memory_format)
              for path in shipped_photos()]
    with torch.inference_mode():
        references = [model.net(photo) for photo in photos]
        for precision in ("fp32", "bf16") if cpu_has_bf16() else ("fp32",):
            def pytorch(image: torch.Tensor = x, precision: str = precision) -> torch.Tensor:
                with autocast(model.device, precision):  # as StyleModel.stylize runs the network
                    return model.net(image)

            forward, _ = openvino_forward(model, copy, precision)
            copy.record(**{f"pytorch_{precision}": seconds_per_megapixel(pytorch, x, shapes),
                           f"openvino_{precision}": seconds_per_megapixel(forward, x, shapes)})
            if precision != "fp32":  # on real photos: a synthetic image overstated OpenVINO's bf16 error
                copy.record(**{f"pytorch_{precision}_psnr_db": mean_psnr_db(pytorch, photos, references),
                               f"openvino_{precision}_psnr_db": mean_psnr_db(forward, photos, references)})


def openvino_start_seconds(copy: Any, metadata: dict[str, str]) -> float:
    """Seconds a later run pays to start ``copy`` (a
    :class:`~styleforge.transfer.runtimes.ConvertedCopy`) beyond its images' own time,
    timed in a fresh process as ``transfer`` pays it (:func:`time_start_here`). In this
    process OpenVINO's Core and CPU plugin are already loaded by the conversion, and a
    second open timed here recorded 0.2 s where a fresh start measured about 0.6 s (random
    full-size network, 2-core Zen 3), so ``auto`` took the copy for one photo it did not repay.

    Raises:
        subprocess.CalledProcessError, subprocess.TimeoutExpired, ValueError: the timing
            process failed (the caller records nothing).
    """
    code = ("import json, sys; from styleforge.transfer.background import time_start_here; "
            "print(time_start_here(*json.loads(sys.argv[1])))")
    arguments = json.dumps([str(copy.xml), str(copy.blobs), metadata])
    result = subprocess.run([sys.executable, "-c", code, arguments], capture_output=True, text=True, timeout=300,
                            check=True)
    return float(result.stdout.split()[-1])


def time_start_here(xml: str, blobs: str, metadata: dict[str, str]) -> float:
    """In a process that has not used OpenVINO yet: seconds from opening the IR file ``xml``
    (importing OpenVINO, creating its Core, loading the CPU plugin, compiling in fp32
    from the blob folder ``blobs``) to the end of the first image, less that image's
    share at the speed of a second image of a new size (which the per-megapixel timings
    already count).

    Raises:
        RuntimeError: OpenVINO is already imported here, so the start would be undercounted.
    """
    if "openvino" in sys.modules:
        raise RuntimeError("time OpenVINO's start in a fresh process (openvino_start_seconds)")
    from styleforge.nets.onnx import OnnxTransformNet
    from styleforge.runtime.sessions import open_openvino_ir

    first, second = photo_like(TIMING_SIDE), photo_like(TIMING_SIDE, seed=1)[..., : TIMING_SIDE - 16, : TIMING_SIDE - 8]
    with torch.inference_mode():
        began = time.perf_counter()
        net = OnnxTransformNet(xml, session=open_openvino_ir(xml, "fp32", blobs, metadata))
        net(first)
        started = time.perf_counter() - began
        began = time.perf_counter()
        net(second)
        per_pixel = (time.perf_counter() - began) / second[0, 0].numel()
    return max(0.0, started - per_pixel * first[0, 0].numel())


def seconds_per_megapixel(call: Any, warmup: torch.Tensor, images: list[torch.Tensor]) -> float:
    """Seconds per megapixel of ``call`` over ``images``, each of a size seen for the first
    time (after one call on ``warmup``): what a photo of a new size costs, first-call set-up
    of that shape included in both runtimes, not the steady state of one repeated shape
    (which OpenVINO compiles statically and which overstated its gain for a single photo)."""
    call(warmup)
    start = time.perf_counter()
    for image in images:
        call(image)
    return (time.perf_counter() - start) / (sum(image.shape[-1] * image.shape[-2] for image in images) / 1e6)


def photo_like(side: int, seed: int = 0) -> torch.Tensor:
    """A smooth, photo-like 0-255 image batch of ``side`` x ``side`` (bicubic-enlarged
    noise: white noise would overstate the rounding error of real photos)."""
    import torch.nn.functional as F

    small = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(seed)) * 255
    return F.interpolate(small, size=(side, side), mode="bicubic", align_corners=False).clamp(0, 255)


def mean_psnr_db(call: Any, photos: list[torch.Tensor], references: list[torch.Tensor]) -> float:
    """The mean :func:`psnr_db` of ``call``'s output of each photo against its reference."""
    return sum(psnr_db(call(photo), reference) for photo, reference in zip(photos, references, strict=True)) / len(photos)


def psnr_db(output: torch.Tensor, reference: torch.Tensor) -> float:
    """PSNR in dB of two network outputs rounded to 8 bits, as they are saved."""
    a, b = (t.float().clamp(0, 255).round() for t in (output, reference))
    mse = float(((a - b) ** 2).mean())
    return 10 * math.log10(255.0**2 / mse) if mse > 0 else 200.0


def main(argv: list[str]) -> int:
    """Run :func:`measure` for ``MODEL OPTIONS-JSON MARKER``; returns the exit status."""
    model_file, options, marker = argv
    with contextlib.suppress(OSError):
        os.nice(10)
    try:
        reuse_freed_memory()  # time PyTorch as the command runs it (see the module text)
        measure(model_file, json.loads(options))
    except Exception:  # noqa: BLE001 (nobody reads a detached process: the next run converts itself)
        return 1
    finally:
        Path(marker).unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
