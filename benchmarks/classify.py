"""VGG19 classification latency: plain eager fp32 vs styleforge's inference paths.

Runs the full ImageNet-width VGG19 (143.7 M parameters) at 224x224, batch 1 and 8.
Without ``--weights`` the network has He-initialised random weights (no download is
needed; the arithmetic is the same as with the trained ones); with ``--weights`` it
uses cached or file weights. For each path it reports the median latency per batch and
per image, the speed-up over the baseline measured in the same run, and the largest
softmax-probability difference and top-1 agreement against the baseline.

Paths:
  eager-fp32        the baseline: contiguous NCHW, torch.no_grad(), fp32
  cl-fp32           styleforge classify's path: inference_mode, channels_last, fp32
  cl-bf16           channels_last + bf16 autocast (CPU and CUDA)
  cl-fp16           channels_last + fp16 autocast (CUDA only)
  compiled-fp32     torch.compile of the cl-fp32 path (with --compile)
  numpy-fp32        the from-scratch NumPy VGG19 (classify --engine numpy), same weights,
                    CPU only; the course's comparison of its own network with the framework

    python benchmarks/classify.py --device cpu --json bench-results/classify-cpu.json
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, median, print_table, time_call, write_json  # noqa: E402

from styleforge.devices import autocast, resolve_device  # noqa: E402
from styleforge.numpy_engine import VGG19 as NumpyVGG19  # noqa: E402
from styleforge.vgg.architecture import IMAGENET_WIDTHS  # noqa: E402
from styleforge.vgg.network import VGG19, load_vgg19  # noqa: E402
from styleforge.vgg.weights.formats import WeightsBundle  # noqa: E402


def random_imagenet_vgg(seed: int = 0) -> VGG19:
    """Full-size VGG19 with He-normal weights (so softmax outputs are not flat)."""
    torch.manual_seed(seed)
    model = VGG19(IMAGENET_WIDTHS, classifier=(4096, 4096, 1000))
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            nn.init.zeros_(module.bias)
    return model.requires_grad_(False).eval()


def numpy_twin(model: VGG19) -> NumpyVGG19:
    """The NumPy engine's VGG19 holding exactly ``model``'s weights."""
    tensors = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
    return NumpyVGG19(WeightsBundle(tensors, model.convention, "benchmark model", model.class_names))


def make_path(name: str, model: VGG19, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """Return a function batch -> probabilities implementing path ``name`` (None if unsupported).

    The paths share one model and convert its memory format in place when built, so
    each must be timed right after it is made (as ``main`` does).
    """
    if name == "numpy-fp32":
        if device.type != "cpu":
            return None
        numpy_model = numpy_twin(model)
        return lambda x: torch.from_numpy(numpy_model.probabilities(x.cpu().numpy()))
    if name == "eager-fp32":
        plain = model.to(device, memory_format=torch.contiguous_format)

        def run(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return torch.softmax(plain(x.contiguous()), dim=1)

        return run
    precision = {"cl-bf16": "bf16", "cl-fp16": "fp16"}.get(name, "fp32")
    if precision == "fp16" and device.type != "cuda":
        return None
    fast = model.to(device, memory_format=torch.channels_last)
    forward: Callable[[torch.Tensor], torch.Tensor] = torch.compile(fast) if name == "compiled-fp32" else fast

    def run_fast(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), autocast(device, precision):
            return torch.softmax(forward(x.contiguous(memory_format=torch.channels_last)).float(), dim=1)

    return run_fast


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--weights", default=None, help="cache name or file (default: random full-size weights)")
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--json", default=None, help="write results to this JSON file")
    args = parser.parse_args()

    device = resolve_device(args.device)
    model = (load_vgg19(args.weights, device="cpu") if args.weights else random_imagenet_vgg()).to(device)
    paths = ["eager-fp32", "cl-fp32", "cl-bf16", "cl-fp16"] + (["compiled-fp32"] if args.compile else []) + ["numpy-fp32"]
    rows = []
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        pixels = torch.rand(batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(batch))
        x = model.normalize(pixels.to(device))
        baseline_probs = None
        baseline_ms = None
        for name in paths:
            run = make_path(name, model, device)
            if run is None:
                continue
            times = time_call(lambda: run(x), device, args.warmup, args.repeats)
            probs = run(x).float().cpu()
            ms = 1000 * median(times)
            if baseline_probs is None:
                baseline_probs, baseline_ms = probs, ms
            rows.append({
                "device": device.type,
                "batch": batch,
                "path": name,
                "ms_per_batch": ms,
                "ms_per_image": ms / batch,
                "images_per_s": 1000 * batch / ms,
                "speedup": baseline_ms / ms,
                "max_prob_diff": float((probs - baseline_probs).abs().max()),
                "top1_agreement": float((probs.argmax(1) == baseline_probs.argmax(1)).float().mean()),
                "times_ms": [1000 * t for t in times],
            })
            print(f"  measured {name} batch {batch}: {ms:.1f} ms", file=sys.stderr)
    print(f"VGG19 classification, {args.size}x{args.size}, median of {args.repeats} runs after {args.warmup} warm-up; "
          f"weights: {args.weights or 'random (He init)'}")
    print_table(rows, [
        ("device", "device", "s"), ("batch", "batch", "d"), ("path", "path", "s"),
        ("ms_per_batch", "ms/batch", ".1f"), ("ms_per_image", "ms/image", ".1f"), ("images_per_s", "img/s", ".2f"),
        ("speedup", "x eager", ".2f"), ("max_prob_diff", "max |dp|", ".2e"), ("top1_agreement", "top-1 agree", ".3f"),
    ])
    write_json(args.json, {"benchmark": "classify", "environment": environment(device), "args": vars(args), "results": rows})


if __name__ == "__main__":
    main()
