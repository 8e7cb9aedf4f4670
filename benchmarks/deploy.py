"""Exported and quantised runtimes at full size: ``styleforge bench`` on models built here.

No pretrained file can be downloaded where this runs, so the models are made locally:

* the full-size transform network (1.68 M parameters) with random weights and random
  instance-norm scales and shifts (the deployment tests' model), or ``--style-model``
  (e.g. one trained a few hundred steps with the synthetic VGG, closer to real
  activation statistics);
* the full ImageNet-width VGG19 classifier (143.7 M parameters, He-initialised, 1000
  classes) written as a torchvision ``.pth``, or ``--weights``.

Each is run through :func:`styleforge.bench.compare.bench_style` /
:func:`~styleforge.bench.compare.bench_classifier`: PyTorch fp32 (the reference),
PyTorch's default path, ONNX Runtime fp32/INT8/INT16 and OpenVINO INT8, with latency
(median of ``--repeat`` after 2 warm-ups) and fidelity over ``--data``. INT8/INT16 are
calibrated on ``--calibration`` (default: the paintings of ``../shared/data/style``), a
set disjoint from the measured photos, so fidelity is out of sample. The machine's
matrix-multiply throughput is printed beside the table as the floor's yardstick.

    python benchmarks/deploy.py --json bench-results/deploy-cpu.json
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from common import environment, matmul_gflops, model_gflops, print_table, write_json  # noqa: E402

from styleforge.bench.compare import bench_classifier, bench_images, bench_style  # noqa: E402
from styleforge.models.files import save_style_model  # noqa: E402
from styleforge.vgg.architecture import IMAGENET_WIDTHS  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def random_style_model(folder: Path) -> Path:
    """The full-size TransformNet with random weights and instance-norm terms, saved."""
    from tests.synthetic import random_style_network

    return save_style_model(random_style_network(seed=0), folder / "random.safetensors", {"style_image": "random", "options": {"norm": "instance"}})


def random_classifier(folder: Path) -> Path:
    """Full-size VGG19 with He-like random weights as a torchvision ``.pth``."""
    from tests.synthetic import random_weights, write_torchvision_pth

    weights = random_weights(widths=IMAGENET_WIDTHS, hidden=(4096, 4096), num_classes=1000, grid=7, seed=0)
    return write_torchvision_pth(weights, folder / "vgg19_random.pth")


@functools.cache
def style_gflops(model: str, size: int) -> float:
    """FLOPs of one pass of ``model``'s network (a style-model file) on a ``size`` x
    ``size`` image (its own architecture: magenta-26's is a tenth of the default's)."""
    from styleforge.transfer.model import load_style_model

    net = load_style_model(model).net.eval()
    with torch.no_grad():
        return model_gflops(lambda: net(torch.zeros(1, 3, size, size)))


@functools.cache
def classifier_gflops(size: int) -> float:
    """FLOPs of one full-size VGG19 classification at ``size`` x ``size``."""
    from styleforge.vgg.network import VGG19

    net = VGG19(IMAGENET_WIDTHS, classifier=(4096, 4096, 1000)).eval()
    with torch.no_grad():
        return model_gflops(lambda: net(torch.zeros(1, 3, size, size)))


def main() -> None:
    """Parse arguments, bench both models, print tables and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--style-model", help="style model to bench (default: random full-size weights)")
    parser.add_argument("--weights", help="VGG19 weights to bench (default: random full-size weights)")
    parser.add_argument("--data", default=str(DATA / "content"), help="photos to time and measure fidelity on")
    parser.add_argument("--calibration", default=str(DATA / "style"), help="images that calibrate INT8/INT16")
    parser.add_argument("--sizes", default="512", help="style model long sides, comma-separated")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--skip", choices=("style", "classifier"), help="bench only the other model")
    parser.add_argument("--json", type=Path, help="write the rows and the environment here")
    args = parser.parse_args()
    images, calibration = bench_images(args.data), bench_images(args.calibration)
    rows = []
    with tempfile.TemporaryDirectory(prefix="styleforge-bench-deploy-") as folder:
        if args.skip != "style":
            model = args.style_model or str(random_style_model(Path(folder)))
            sizes = [int(s) for s in args.sizes.split(",")]
            rows += [r.as_dict() | {"gflop": style_gflops(model, r.size)}
                     for r in bench_style(model, images, sizes, repeat=args.repeat, calibration=calibration)]
        if args.skip != "classifier":
            weights = args.weights or str(random_classifier(Path(folder)))
            rows += [r.as_dict() | {"gflop": classifier_gflops(r.size)}
                     for r in bench_classifier(weights, images, repeat=args.repeat, calibration=calibration)]
    fp32 = {(r["model"], r["size"]): r["ms"] for r in rows if r["path"] == "onnxruntime fp32"}
    throughput = {"fp32": matmul_gflops(torch.float32), "bf16": matmul_gflops(torch.bfloat16)}
    for r in rows:
        r["vs_onnxruntime_fp32"] = fp32[(r["model"], r["size"])] / r["ms"]
        r["floor_ms_bf16"] = 1000 * r["gflop"] / throughput["bf16"]
    print_table(rows, [("model", "model", "s"), ("size", "size", "d"), ("path", "runtime", "s"), ("ms", "ms", ".1f"),
                       ("vs_onnxruntime_fp32", "x ORT fp32", ".2f"), ("psnr_db", "PSNR dB", ".1f"),
                       ("top1_agreement", "top-1 agree", ".3f"), ("max_prob_diff", "max |dp|", ".2e"),
                       ("gflop", "GFLOP", ".1f"), ("floor_ms_bf16", "bf16 floor ms", ".1f")])
    env = environment(torch.device("cpu")) | {"matmul_gflops": throughput}
    print(f"torch.matmul 4096^2 on this machine: {throughput['fp32']:.0f} GFLOP/s fp32, {throughput['bf16']:.0f} bf16; "
          "floor = the network's FLOPs at that throughput (no int8 matmul yardstick in PyTorch)")
    if args.json:
        write_json(args.json, {"environment": env, "images": len(images), "calibration_images": len(calibration), "rows": rows})


if __name__ == "__main__":
    main()
