"""Feed-forward stylisation latency: plain baselines vs styleforge's paths, beside the floor.

The baselines are pytorch/examples' TransformerNet layout written plainly here
(reflection-padded convolutions, nn.InstanceNorm2d, nearest-upsample-then-conv, contiguous
NCHW, no_grad) and loaded with the same weights: ``baseline-fp32`` (fp32 eager, what the
example runs) and ``baseline-bf16-cl`` (bf16 autocast on channels_last tensors, the best
simple setting a user would try; fp16 on CUDA). Reduced-precision baselines and paths
are timed only where the device runs them natively (a CPU without AVX512-BF16/AMX
emulates bf16 several times slower than fp32: there it would only time the emulation).
The floor is the network's FLOPs over the measured matrix-multiply throughput of this
machine in the path's precision.

styleforge's paths are ``StyleModel.stylize``'s, named LAYOUT-PRECISION[-compiled][-graph]:
on the CPU channels_last tensors (``cl-fp32``, ``cl-bf16``) and the OpenVINO copy that
``transfer --runtime openvino`` (and ``auto`` when it pays) runs (``ov-fp32``, ``ov-bf16``,
and ``ov-int8``, the INT8 copy of ``transfer --precision int8``, which has no floor: PyTorch has
no int8 matmul to measure one;
its conversion is not timed, ``benchmarks/runtime.py`` times first use), on CUDA NCHW (``nchw-fp32``,
``nchw-fp16``) and the same replayed as CUDA graphs (``-graph``, what ``transfer`` does
for a size seen a third time). ``--compile`` adds each through ``transfer --compile``'s
torch.compile (:func:`styleforge.utils.compiling.compile_network`, one static graph per size;
compilation happens in the warm-up and is not timed). Weights are random (the arithmetic
is what is timed); fidelity is the PSNR (and max error) of each path's 8-bit output
against the baseline's.

``--conventions`` times ``StyleModel.stylize`` (the default path of ``transfer``) for
each network convention an imported model can have: styleforge's own, pytorch/examples'
(and the ONNX Model Zoo's, converted: 0-255 in, clamped out) and jcjohnson's
(40-pixel input reflection, unpadded residual blocks, BGR/mean pixels), and a
four-style conditional-instance-norm network (style 0 selected).

``--video`` stylises a clip panned and zoomed across a real photo at each of
``--video-sizes`` with ``transfer_video``, frame by frame and with temporal smoothing,
reporting frames per second and the warping error (flow-based, 0-255 units).

    python benchmarks/transfer.py --device cpu --sizes 256,512,1024 --conventions --video --json bench-results/transfer-cpu.json
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    add_matmul_size_argument,
    environment,
    floor,
    median,
    model_gflops,
    precisions_to_time,
    print_table,
    throughputs,
    time_call,
    write_json,
)

from styleforge.config import TransferOptions, VideoOptions  # noqa: E402
from styleforge.devices import autocast, resolve_device  # noqa: E402
from styleforge.nets.transform_net import TransformNet  # noqa: E402
from styleforge.utils.compiling import compile_network  # noqa: E402
from styleforge.utils.cuda_graphs import GraphedCalls  # noqa: E402

PHOTO = Path(__file__).resolve().parents[1] / "tests" / "assets" / "coffee.jpg"
#: Network conventions of imported models (TransformNet.convention() fields).
CONVENTIONS = {
    "styleforge": {},
    "pytorch-examples / onnx-zoo": {"input_divisor": "1", "output": "clamp"},
    "multi-style, 4 styles": {"styles": "4"},
    "jcjohnson .t7": {"padding": "input", "upsample": "deconv", "channel_order": "bgr", "input_divisor": "1",
                      "input_mean": "103.939,116.779,123.68", "output_scale": "150", "output_offset": "103.939,116.779,123.68"},
}


class PlainTransformNet(nn.Module):
    """The same network written the plain way (as tutorials do), for the baseline."""

    def __init__(self) -> None:
        super().__init__()
        # pytorch/examples' TransformerNet: the same layers; its output is the last conv's
        # (styleforge maps it through tanh to 0-255, a negligible cost kept here for equal outputs).

        def conv(c_in: int, c_out: int, k: int, s: int = 1) -> nn.Sequential:
            return nn.Sequential(nn.ReflectionPad2d(k // 2), nn.Conv2d(c_in, c_out, k, s))

        self.down = nn.ModuleList([conv(3, 32, 9), conv(32, 64, 3, 2), conv(64, 128, 3, 2)])
        self.down_norms = nn.ModuleList([nn.InstanceNorm2d(c, affine=True) for c in (32, 64, 128)])
        self.res = nn.ModuleList([nn.ModuleList([conv(128, 128, 3), nn.InstanceNorm2d(128, affine=True),
                                                 conv(128, 128, 3), nn.InstanceNorm2d(128, affine=True)]) for _ in range(5)])
        self.up = nn.ModuleList([conv(128, 64, 3), conv(64, 32, 3)])
        self.up_norms = nn.ModuleList([nn.InstanceNorm2d(c, affine=True) for c in (64, 32)])
        self.out = conv(32, 3, 9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x / 255.0
        for c, n in zip(self.down, self.down_norms):
            y = F.relu(n(c(y)))
        for c1, n1, c2, n2 in self.res:
            y = y + n2(c2(F.relu(n1(c1(y)))))
        for c, n in zip(self.up, self.up_norms):
            y = F.relu(n(c(F.interpolate(y, scale_factor=2, mode="nearest"))))
        return (torch.tanh(self.out(y)) + 1) * 127.5


def load_plain(net: TransformNet) -> PlainTransformNet:
    """Copy styleforge's weights into the plain network (same order of parameters)."""
    plain = PlainTransformNet()
    ours = [p for p in net.parameters()]
    theirs = [p for p in plain.parameters()]
    order = _plain_order(net)
    with torch.no_grad():
        for target, source in zip(theirs, order, strict=True):
            target.copy_(source)
    assert len(ours) == len(theirs)
    return plain.eval()


def _plain_order(net: TransformNet) -> list[torch.Tensor]:
    params = []
    for conv, norm in ((net.conv1, net.norm1), (net.conv2, net.norm2), (net.conv3, net.norm3)):
        params += [conv.conv.weight, conv.conv.bias]
    params += [net.norm1.weight, net.norm1.bias, net.norm2.weight, net.norm2.bias, net.norm3.weight, net.norm3.bias]
    for block in net.residuals:
        params += [block.conv1.conv.weight, block.conv1.conv.bias, block.norm1.weight, block.norm1.bias,
                   block.conv2.conv.weight, block.conv2.conv.bias, block.norm2.weight, block.norm2.bias]
    params += [net.up1.conv.conv.weight, net.up1.conv.conv.bias, net.up2.conv.conv.weight, net.up2.conv.conv.bias]
    params += [net.norm4.weight, net.norm4.bias, net.norm5.weight, net.norm5.bias]
    params += [net.conv_out.conv.weight, net.conv_out.conv.bias]
    return params


def _precision(path: str) -> str:
    """The precision a path name runs in: ``baseline-fp32``, ``baseline-bf16-cl``, ``cl-bf16-compiled``..."""
    return path.split("-")[1]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two 8-bit images."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", default="256,512,1024", help="square sides or WxH, e.g. 512,1920x1080")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (one compilation per size)")
    parser.add_argument("--paths", default=None, help="comma-separated paths to time besides the baseline, "
                        "each LAYOUT-PRECISION[-compiled][-graph] with LAYOUT cl or nchw, e.g. nchw-fp16,nchw-fp16-compiled-graph")
    parser.add_argument("--conventions", action="store_true", help="also time each imported-model convention")
    parser.add_argument("--video", action="store_true", help="also time video transfer with and without smoothing")
    parser.add_argument("--video-sizes", default="640x360,1280x720")
    parser.add_argument("--video-frames", type=int, default=30)
    parser.add_argument("--json", default=None)
    add_matmul_size_argument(parser, "2048, 8192 on CUDA")
    args = parser.parse_args()
    device = resolve_device(args.device)
    net = _noisy(TransformNet()).eval().requires_grad_(False)
    plain = load_plain(net).to(device)
    plain_cl = copy.deepcopy(plain).to(memory_format=torch.channels_last)
    # Reduced precisions only where the device runs them natively (emulated bf16 on a CPU
    # without AVX512-BF16/AMX would only time the emulation); fp16 is the CUDA baseline's.
    reduced = precisions_to_time(device, None)[1:]
    low = "fp16" if device.type == "cuda" else (reduced[0] if reduced else None)
    low_base = f"baseline-{low}-cl" if low else None
    baselines = ["baseline-fp32", *([low_base] if low_base else [])]
    if args.paths:
        paths = [*baselines, *args.paths.split(",")]
    else:
        # StyleModel's paths: on CUDA NCHW, eager and replayed as CUDA graphs; on the CPU channels_last.
        cuda = device.type == "cuda"
        bases = ["nchw-fp32", "nchw-fp16"] if cuda else ["cl-fp32", *(f"cl-{p}" for p in reduced), *_openvino_paths(reduced)]
        replays = ("", "-graph") if cuda else ("",)
        compiles = ("", "-compiled") if args.compile else ("",)
        paths = [*baselines, *(base + c + r for c in compiles for r in replays for base in bases)]
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # cuDNN runs fp32 convolutions as TF32: their floor
    needed = list(dict.fromkeys(_precision(name) for name in paths if _precision(name) != "int8"))  # no int8 matmul yardstick
    rates = throughputs(device, needed, n=args.matmul_size or (8192 if device.type == "cuda" else 2048))
    torch.backends.cuda.matmul.allow_tf32 = False
    compiled = {}
    rows = []
    for token in args.sizes.split(","):
        width, height = (int(v) for v in token.split("x")) if "x" in token else (int(token), int(token))
        size = token
        rng = np.random.default_rng(width * height)
        small = torch.from_numpy(rng.integers(0, 256, (1, 3, 16, 16)).astype(np.float32))
        x = F.interpolate(small, size=(height, width), mode="bicubic", align_corners=False).clamp(0, 255).to(device)
        reference = None
        base_ms: dict[str, float] = {}
        gflop = model_gflops(lambda x=x: net.to(device)(x))
        for name in paths:
            precision = _precision(name)
            if name == "baseline-fp32":
                model, fmt = plain, torch.contiguous_format
            elif name.startswith("baseline-"):
                model, fmt = plain_cl, torch.channels_last
            elif name == "ov-int8":  # transfer --precision int8's copy (quantised here, untimed)
                model, fmt = int8_copy(net), torch.contiguous_format
            elif name.startswith("ov-"):  # transfer --runtime openvino's copy (converted here, untimed)
                model, fmt = openvino_copy(net, precision), torch.contiguous_format
            else:
                layout, _, *flags = name.split("-")
                fmt = torch.channels_last if layout == "cl" else torch.contiguous_format
                model = net.to(device, memory_format=fmt)
                if "compiled" in flags:
                    if layout not in compiled:
                        compiled[layout] = compile_network(model)  # transfer --compile's: static per size
                    model = compiled[layout]
                if "graph" in flags:  # captured on the second call (the first compiles, when compiled)
                    model = GraphedCalls(model, capture_after=1)

            def run(model: nn.Module = model, fmt: torch.memory_format = fmt, precision: str = precision) -> torch.Tensor:
                with torch.inference_mode(), autocast(device, "fp32" if precision == "int8" else precision):
                    return model(x.contiguous(memory_format=fmt))

            times = time_call(run, device, args.warmup, args.repeats)
            out = run().float().clamp(0, 255).round().byte().cpu().numpy()
            ms = 1000 * median(times)
            if reference is None:
                reference = out
            if name.startswith("baseline-"):
                base_ms[name] = ms
            least = floor(gflop, rates, precision)
            floor_ms = 1000 * least if least else None
            rows.append({"device": device.type, "size": size, "path": name, "ms": ms, "fps": 1000 / ms,
                         "speedup": base_ms["baseline-fp32"] / ms, "speedup_low": base_ms[low_base] / ms if low_base in base_ms else None,
                         "gflop": gflop, "floor_ms": floor_ms, "x_floor": ms / floor_ms if floor_ms else None,
                         "psnr_db": psnr(out, reference), "max_err": int(np.abs(out.astype(int) - reference.astype(int)).max()),
                         "times_ms": [1000 * t for t in times]})
            print(f"  {size}px {name}: {ms:.1f} ms", file=sys.stderr)
    print(f"TransformNet stylisation, batch 1, median of {args.repeats} after {args.warmup} warm-up (random weights)")
    print_table(rows, [("device", "device", "s"), ("size", "size", "s"), ("path", "path", "s"), ("ms", "ms/image", ".1f"),
                       ("fps", "images/s", ".2f"), ("speedup", "x fp32 base", ".2f"), ("speedup_low", f"x {low or 'reduced'}-cl base", ".2f"),
                       ("floor_ms", "floor ms", ".1f"), ("x_floor", "x floor", ".1f"),
                       ("psnr_db", "PSNR dB", ".1f"), ("max_err", "max err", "d")])
    result = {"benchmark": "transfer", "environment": environment(device), "args": vars(args), "matmul_gflops": rates, "results": rows}
    if args.conventions:
        result["conventions"] = time_conventions(device, args)
    if args.video:
        result["video"] = time_video(device, args)
    write_json(args.json, result)


def _openvino_paths(reduced: list[str]) -> list[str]:
    """The OpenVINO copy's paths where OpenVINO is installed: fp32, bf16 where native, and
    the INT8 copy of ``transfer --precision int8``."""
    from styleforge.runtime.sessions import openvino_available

    return ["ov-fp32", *(["ov-bf16"] if "bf16" in reduced else []), "ov-int8"] if openvino_available() else []


def openvino_copy(net: TransformNet, precision: str) -> object:
    """``net``'s OpenVINO copy as ``transfer --runtime openvino --precision PRECISION`` runs
    it on whole images (converted and checked against PyTorch first, in a temporary cache)."""
    from styleforge.models.files import save_style_model
    from styleforge.transfer.model import load_style_model

    folder = Path(tempfile.mkdtemp(prefix="styleforge-bench-"))
    path = save_style_model(net, folder / "net.safetensors", {})
    model = load_style_model(path, options=TransferOptions(device="cpu", runtime="openvino", precision=precision))
    model.prepare()
    return model.forward


def int8_copy(net: TransformNet) -> object:
    """``net``'s INT8 copy as ``transfer --precision int8`` runs it (exported, quantised on the
    shipped photos and opened in OpenVINO, in a temporary cache)."""
    from styleforge.models.files import save_style_model
    from styleforge.transfer.model import load_style_model

    folder = Path(tempfile.mkdtemp(prefix="styleforge-bench-"))
    path = save_style_model(net, folder / "net.safetensors", {})
    return load_style_model(path, options=TransferOptions(device="cpu", precision="int8")).net


def _noisy(net: TransformNet) -> TransformNet:
    """``net`` with seeded noise added to every parameter (a network that is no identity)."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return net


def _saved_model(folder: Path, name: str, convention: dict[str, str]) -> Path:
    from styleforge.models.files import save_style_model

    return save_style_model(_noisy(TransformNet.from_convention(convention)), folder / f"{name}.safetensors", {})


def time_conventions(device: torch.device, args: argparse.Namespace) -> list[dict]:
    """``StyleModel.stylize`` per imported-model convention at each size (default precision)."""
    import tempfile

    from PIL import Image

    from styleforge.transfer.model import load_style_model

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name, convention in CONVENTIONS.items():
            model = load_style_model(_saved_model(Path(folder), name.split()[0], convention),
                                     options=TransferOptions(device=str(device)))
            for token in args.sizes.split(","):
                width, height = (int(v) for v in token.split("x")) if "x" in token else (int(token), int(token))
                image = Image.open(PHOTO).convert("RGB").resize((width, height))
                ms = 1000 * median(time_call(lambda: model.stylize(image), device, args.warmup, args.repeats))
                rows.append({"convention": name, "size": token, "precision": model.options.precision, "ms": ms, "fps": 1000 / ms})
                print(f"  {name} {token}px: {ms:.1f} ms", file=sys.stderr)
    base = {row["size"]: row["ms"] for row in rows if row["convention"] == "styleforge"}
    for row in rows:
        row["x_own_network"] = base[row["size"]] / row["ms"]
    print("\nImported-model conventions through StyleModel.stylize (PIL in, PIL out), batch 1")
    print_table(rows, [("convention", "convention", "s"), ("size", "size", "s"), ("precision", "precision", "s"),
                       ("ms", "ms/image", ".1f"), ("x_own_network", "x own network", ".2f")])
    return rows


def _panned_clip(path: Path, width: int, height: int, frames: int) -> Path:
    """A clip panning and zooming across the test photo (H.264, near lossless)."""
    import av
    import cv2
    from PIL import Image

    photo = np.asarray(Image.open(PHOTO).convert("RGB"))
    scale0 = max(photo.shape[1] / width, photo.shape[0] / height) * 0.8
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt, stream.options = width, height, "yuv420p", {"crf": "8"}
        for t in range(frames):
            scale = scale0 * (1 - 0.004 * t)
            centre = np.array(photo.shape[1::-1]) / 2 + t * np.array([0.4, 0.15])
            offset = centre - scale * np.array([(width - 1) / 2, (height - 1) / 2])
            matrix = np.array([[scale, 0, offset[0]], [0, scale, offset[1]]])
            frame = cv2.warpAffine(photo, matrix, (width, height), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                                   borderMode=cv2.BORDER_REFLECT)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def _smoothing_ms(clip: Path, model: object) -> float:
    """Median milliseconds of one TemporalSmoother call on the clip's frames (stylised once, outside the timing)."""
    import time

    from PIL import Image

    from styleforge.video.io import VideoReader
    from styleforge.video.temporal import TemporalSmoother

    with VideoReader(clip) as reader:
        frames = [frame.pixels for frame, _ in zip(reader.frames(), range(8), strict=False)]
    stylised = [np.asarray(model.stylize(Image.fromarray(f))) for f in frames]  # type: ignore[attr-defined]
    smoother = TemporalSmoother(VideoOptions.DEFAULT_SMOOTHING)
    smoother(frames[0], stylised[0])
    times = []
    for frame, output in zip(frames[1:], stylised[1:], strict=True):
        start = time.perf_counter()
        smoother(frame, output)
        times.append(time.perf_counter() - start)
    return 1000 * median(times)


def time_video(device: torch.device, args: argparse.Namespace) -> list[dict]:
    """``transfer_video`` frames/s and warping error, without and with temporal smoothing."""
    import tempfile

    from styleforge.transfer.model import load_style_model
    from styleforge.video.transfer import transfer_video

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        model = load_style_model(_saved_model(Path(folder), "own", {}), options=TransferOptions(device=str(device)))
        for token in args.video_sizes.split(","):
            width, height = (int(v) for v in token.split("x"))
            clip = _panned_clip(Path(folder) / f"clip{token}.mp4", width, height, args.video_frames)
            for smoothing in (0.0, VideoOptions.DEFAULT_SMOOTHING):
                timed = transfer_video(model, clip, Path(folder) / "out.mp4", VideoOptions(temporal_smoothing=smoothing),
                                       progress=False)
                measured = timed if smoothing else transfer_video(  # the plain run's error needs the flow it skipped
                    model, clip, Path(folder) / "out.mp4", VideoOptions(measure=True), progress=False)
                rows.append({"size": token, "smoothing": smoothing, "frames": timed.frames, "fps": timed.processing_fps,
                             "warping_error": measured.warping_error_after, "precision": model.options.precision})
                print(f"  video {token} smoothing {smoothing}: {timed.processing_fps:.2f} frames/s", file=sys.stderr)
            smoothing_ms = _smoothing_ms(clip, model)
            for row in rows[-2:]:
                row["smoothing_ms_per_frame"] = smoothing_ms if row["smoothing"] else 0.0
    for row in rows:
        plain = next(r for r in rows if r["size"] == row["size"] and r["smoothing"] == 0.0)
        row["error_vs_plain"] = row["warping_error"] / plain["warping_error"]
    print(f"\nVideo: transfer_video on a {args.video_frames}-frame panned clip (decode, stylise, smooth, encode); "
          "smoothing ms = the smoother alone (two DIS flows, consistency, warp, blend) per frame")
    print_table(rows, [("size", "size", "s"), ("smoothing", "smoothing", ".1f"), ("precision", "precision", "s"),
                       ("fps", "frames/s", ".2f"), ("smoothing_ms_per_frame", "smoothing ms", ".1f"),
                       ("warping_error", "warping error", ".2f"),
                       ("error_vs_plain", "x plain error", ".2f")])
    return rows


if __name__ == "__main__":
    main()
