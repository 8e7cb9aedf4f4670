"""The OpenVINO copy of a PyTorch style network and ``--runtime auto``'s choice
(styleforge.transfer.runtimes): parity with PyTorch for every network convention, the
cache, the fingerprint, the weighed choice, the fallbacks and their reasons, the
background conversion and the CLI."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from styleforge.config import RuntimePolicy, TransferOptions
from styleforge.errors import StyleforgeError
from styleforge.nets.transform_net import TransformNet, convolution_gflop_per_megapixel
from styleforge.transfer import runtimes
from styleforge.transfer.model import load_style_model
from tests.conftest import assert_user_error, make_photo, run_cli
from tests.synthetic import SMALL_NET, small_style_model

pytest.importorskip("openvino")

#: Network conventions an imported model can have (TransformNet arguments), small widths.
CONVENTIONS = {
    "styleforge": {},
    "pytorch-examples": {"input_divisor": 1.0, "output": "clamp"},
    "jcjohnson": {"residual_blocks": 5, "padding": "input", "upsample": "deconv", "channel_order": "bgr", "input_divisor": 1.0,
                  "input_mean": (103.939, 116.779, 123.68), "output_scale": 150.0, "output_offset": (103.9, 116.8, 123.7)},
    "batch norm": {"norm": "batch"},
    "four styles": {"styles": 4},
}


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def loaded(path: Path, runtime: str, **options: object) -> object:
    """The model loaded and prepared for ``runtime``, in fp32 unless ``options`` say (parity
    must not depend on whether this CPU runs bf16 natively)."""
    options = {"precision": "fp32", **options}
    model = load_style_model(path, options=TransferOptions(device="cpu", runtime=runtime, **options))  # type: ignore[arg-type]
    model.prepare()
    return model


@pytest.mark.parametrize("convention", list(CONVENTIONS))
def test_the_openvino_copy_gives_pytorchs_images_for_every_convention(tmp_path: Path, convention: str) -> None:
    path = small_style_model(tmp_path, **CONVENTIONS[convention])
    options = {"style_weights": "0:1,2:3"} if convention == "four styles" else {}
    reference, copy = loaded(path, "pytorch", **options), loaded(path, "openvino", **options)
    assert copy.runtime_choice.runtime == "openvino" and "openvino" in copy.device_description
    for width, height in ((53, 37), (64, 48), (9, 6), (130, 97)):  # odd, even, below the padding minimum
        image = photo(width, height, seed=width)
        assert np.abs(pixels(copy.stylize(image)) - pixels(reference.stylize(image))).max() <= 1
    same = [photo(40, 30, seed=s) for s in range(3)]  # a batch of one size: the static-shape compile on 2nd sight
    for a, b in zip(copy.stylize_batch(same), reference.stylize_batch(same), strict=True):
        assert np.abs(pixels(a) - pixels(b)).max() <= 1


def test_bf16_compiles_the_ir_checked_in_fp32_and_stays_near_fp32(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The conversion is checked in fp32, then the same IR is compiled with bf16 requested
    (where the CPU lacks bf16, OpenVINO runs it in fp32: the bound below holds either way)."""
    from styleforge.runtime import sessions

    monkeypatch.setenv("STYLEFORGE_NATIVE_BF16", "1")
    requested = []
    real = sessions.open_openvino_ir

    def spy(path: object, precision: str, *args: object) -> object:
        requested.append(precision)
        return real(path, precision, *args)

    monkeypatch.setattr(sessions, "open_openvino_ir", spy)
    path = small_style_model(tmp_path)
    copy, reference = loaded(path, "openvino", precision="bf16"), loaded(path, "pytorch")
    assert requested == ["fp32", "bf16"]
    image = photo(130, 97)
    error = (pixels(copy.stylize(image)) - pixels(reference.stylize(image))).astype(np.float64)
    assert 10 * np.log10(255**2 / max(float(np.mean(error**2)), 1e-12)) > 30  # this net: 37.8 dB on an AMX CPU


def test_strength_norm_and_pixel_strength_and_colour_apply_to_the_copy(tmp_path: Path) -> None:
    path = small_style_model(tmp_path)
    for options in ({"strength": 0.4, "strength_mode": "norm"}, {"strength": 0.5}, {"preserve_color": "luminance"}):
        reference, copy = loaded(path, "pytorch", **options), loaded(path, "openvino", **options)
        image = photo(45, 33)
        assert np.abs(pixels(copy.stylize(image)) - pixels(reference.stylize(image))).max() <= 1, options
    plain, weak = loaded(path, "openvino"), loaded(path, "openvino", strength=0.2, strength_mode="norm")
    assert np.abs(pixels(plain.stylize(photo(45, 33))) - pixels(weak.stylize(photo(45, 33)))).max() > 5


def test_tiles_run_in_pytorch_and_match(tmp_path: Path) -> None:
    path = small_style_model(tmp_path)
    reference, copy = loaded(path, "pytorch", tile=64), loaded(path, "openvino", tile=64)
    image = photo(150, 110)
    assert np.abs(pixels(copy.stylize(image)) - pixels(reference.stylize(image))).max() <= 1


def test_the_copy_is_converted_once_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = small_style_model(tmp_path)
    first = loaded(path, "openvino")
    assert "converted once" in first.runtime_choice.reason
    folder = first.runtime_choice.copy.folder
    assert (folder / "model.xml").is_file() and (folder / "model.bin").is_file()
    assert runtimes.ConvertedCopy(folder).timings().first_use > 0

    def no_conversion(*args: object) -> None:
        raise AssertionError("converted again")

    monkeypatch.setattr(runtimes, "convert", no_conversion)
    second = loaded(path, "openvino")
    assert second.runtime_choice.copy.folder == folder and "converted" not in second.runtime_choice.reason
    assert any(second.runtime_choice.copy.blobs.iterdir()), "compiled blobs are cached per machine"


def test_the_fingerprint_follows_everything_the_graph_depends_on(tmp_path: Path) -> None:
    net = TransformNet(**SMALL_NET, styles=3)
    same = TransformNet(**SMALL_NET, styles=3)
    same.load_state_dict(net.state_dict())
    base = runtimes.fingerprint(net)
    assert runtimes.fingerprint(same) == base
    same.select_styles(1)  # a plain tensor attribute, not a buffer
    assert runtimes.fingerprint(same) != base
    other = TransformNet(**SMALL_NET, styles=3)
    other.load_state_dict(net.state_dict())
    with torch.no_grad():
        next(other.parameters())[0, 0, 0, 0] += 1e-3
    assert runtimes.fingerprint(other) != base
    assert runtimes.fingerprint(TransformNet(**SMALL_NET, styles=3, output="clamp")) != runtimes.fingerprint(
        TransformNet(**SMALL_NET, styles=3))


class _Model:
    """What choose_runtime reads of a StyleModel."""

    def __init__(self, net: torch.nn.Module, **options: object) -> None:
        self.net, self.device, self.source = net, torch.device("cpu"), None
        self.options = TransferOptions(device="cpu", **options)  # type: ignore[arg-type]


def test_the_weighed_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    net = TransformNet(**SMALL_NET)
    policy = RuntimePolicy(background_conversion=False)
    model = _Model(net, precision="fp32")
    copy = runtimes.copy_of(net)
    assert not copy.exists()
    cold_small = runtimes.choose_runtime(model, 1.0, policy)
    assert cold_small.runtime == "pytorch" and "first use" in cold_small.reason
    per_mp = convolution_gflop_per_megapixel(net)
    cold_big = runtimes.choose_runtime(model, policy.cold_min_gflop / per_mp, policy)
    assert cold_big.runtime == "openvino" and "converting once" in cold_big.reason
    assert runtimes.choose_runtime(model, float("inf"), policy).runtime == "openvino"
    monkeypatch.setattr(runtimes.ConvertedCopy, "exists", lambda self: True)
    assert runtimes.choose_runtime(model, policy.warm_min_gflop / per_mp, policy).runtime == "openvino"
    assert runtimes.choose_runtime(model, policy.warm_min_gflop / per_mp / 2, policy).runtime == "pytorch"
    copy.record(pytorch_fp32=3.0, openvino_fp32=2.0, start=0.5, first_use=2.0)
    measured = runtimes.choose_runtime(model, 0.6, policy)  # saves 0.6 s > 0.5 s
    assert (measured.runtime, measured.precision) == ("openvino", "fp32")
    small = runtimes.choose_runtime(model, 0.4, policy)
    assert small.runtime == "pytorch" and "0.5 s start" in small.reason
    copy.record(openvino_fp32=3.3)
    slower = runtimes.choose_runtime(model, 100.0, policy)
    assert slower.runtime == "pytorch" and "no faster" in slower.reason
    assert runtimes.choose_runtime(_Model(net, runtime="openvino"), 0.0, policy).runtime == "openvino"
    assert runtimes.choose_runtime(_Model(net, runtime="pytorch"), 100.0, policy).runtime == "pytorch"



def test_before_measurements_a_job_is_weighed_by_its_networks_work_not_its_pixels() -> None:
    """A folder of 20 photos of 1024x768 (15.7 MP) repays converting the full-size network
    in the job, not magenta-26's shape, which needs 8x fewer FLOPs per pixel: converted in
    the job it lost 0.85-0.92x against PyTorch on a Zen 3."""
    policy = RuntimePolicy(background_conversion=False)
    folder = 20 * 1024 * 768 / 1e6
    full_size, small = TransformNet(), TransformNet(widths=(32, 32, 32, 8, 4), residual_blocks=6)
    assert convolution_gflop_per_megapixel(full_size) > 7 * convolution_gflop_per_megapixel(small)
    assert runtimes.choose_runtime(_Model(full_size, precision="fp32"), folder, policy).runtime == "openvino"
    kept = runtimes.choose_runtime(_Model(small, precision="fp32"), folder, policy)
    assert kept.runtime == "pytorch" and "GFLOP) does not repay converting" in kept.reason

def test_a_bf16_job_weighs_openvinos_bf16_by_its_measured_fidelity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STYLEFORGE_NATIVE_BF16", "1")
    net = TransformNet(**SMALL_NET)
    policy = RuntimePolicy(background_conversion=False, min_psnr_db=45.0, psnr_tolerance_db=1.0)
    model = _Model(net, precision="bf16")
    monkeypatch.setattr(runtimes.ConvertedCopy, "exists", lambda self: True)
    unmeasured = runtimes.choose_runtime(model, float("inf"), policy)  # cached, but bf16 fidelity unknown
    assert unmeasured.runtime == "pytorch" and "measured speed and PSNR" in unmeasured.reason
    copy = runtimes.copy_of(net)
    copy.record(pytorch_bf16=1.0, openvino_fp32=0.8, openvino_bf16=0.3, start=0.1,
                pytorch_bf16_psnr_db=47.4, openvino_bf16_psnr_db=43.9)  # magenta-26 on an AMX Xeon
    too_far = runtimes.choose_runtime(model, 100.0, policy)
    assert (too_far.runtime, too_far.precision) == ("openvino", "fp32")  # 1.25x and exact, not 3.3x at 43.9 dB
    copy.record(openvino_bf16_psnr_db=46.5)  # within 1 dB of PyTorch's bf16
    assert runtimes.choose_runtime(model, 100.0, policy).precision == "bf16"
    copy.record(pytorch_bf16_psnr_db=38.4, openvino_bf16_psnr_db=34.3, openvino_fp32=2.2)  # the random network
    kept = runtimes.choose_runtime(model, 100.0, policy)
    assert kept.runtime == "pytorch" and "34.3 dB" in kept.reason
    copy.record(openvino_bf16_psnr_db=45.2)  # above the floor: faithful even if PyTorch's bf16 were better
    assert runtimes.choose_runtime(model, 100.0, policy).precision == "bf16"
    fp32_job = runtimes.choose_runtime(_Model(net, precision="fp32"), 100.0, policy)  # PyTorch's fp32 unmeasured
    assert fp32_job.runtime == "openvino" and "cached" in fp32_job.reason


@pytest.mark.parametrize(("options", "reason"), [
    ({"compile": True}, "torch.compile"),
    ({"power_difference": True}, "PowerDifference"),
])
def test_settings_without_a_copy_stay_in_pytorch_with_the_reason(options: dict, reason: str) -> None:
    policy = RuntimePolicy(background_conversion=False)
    choice = runtimes.choose_runtime(_Model(TransformNet(**SMALL_NET), **options), float("inf"), policy)
    assert choice.runtime == "pytorch" and reason in choice.reason
    if "compile" not in options:
        with pytest.raises(StyleforgeError, match=reason):
            runtimes.choose_runtime(_Model(TransformNet(**SMALL_NET), runtime="openvino", **options), 1.0, policy)


def test_emulated_bf16_stays_in_pytorch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STYLEFORGE_NATIVE_BF16", "0")
    choice = runtimes.choose_runtime(_Model(TransformNet(**SMALL_NET), precision="bf16"), float("inf"), RuntimePolicy())
    assert choice.runtime == "pytorch" and "bf16" in choice.reason


def test_a_failed_conversion_falls_back_to_pytorch_in_auto(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = small_style_model(tmp_path)

    def broken(*args: object) -> None:
        raise RuntimeError("no converter for this graph")

    monkeypatch.setattr(runtimes, "convert", broken)
    model = load_style_model(path, options=TransferOptions(device="cpu", precision="fp32"))
    choice = model.prepare()
    assert choice.runtime == "pytorch" and "no converter for this graph" in choice.reason
    assert np.asarray(model.stylize(photo(20, 20))).shape == (20, 20, 3)
    with pytest.raises(StyleforgeError, match="no converter for this graph"):
        load_style_model(path, options=TransferOptions(device="cpu", runtime="openvino")).prepare()


def test_a_copy_that_disagrees_with_pytorch_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = small_style_model(tmp_path)
    real = runtimes.convert

    def skewed(net: TransformNet, folder: Path) -> None:
        with torch.no_grad():
            net.conv_out.conv.bias.add_(5.0)  # the copy is traced from another network than the one checked
        try:
            real(net, folder)
        finally:
            with torch.no_grad():
                net.conv_out.conv.bias.sub_(5.0)

    monkeypatch.setattr(runtimes, "convert", skewed)
    with pytest.raises(StyleforgeError, match="disagrees with PyTorch"):
        load_style_model(path, options=TransferOptions(device="cpu", runtime="openvino")).prepare()


def test_the_background_conversion_leaves_a_copy_and_timings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = small_style_model(tmp_path)
    model = load_style_model(path, options=TransferOptions(device="cpu"))
    policy = RuntimePolicy(background_conversion=True, background_min_megapixels=0.0)
    choice = model.prepare(0.01, policy)
    assert choice.runtime == "pytorch" and "background after this run" in choice.reason
    copy = choice.copy
    assert not copy.exists(), "nothing starts before the job is done"
    runtimes.start_pending_conversions()  # what the process does at exit
    precision = model.options.precision  # bf16 where this CPU has it natively: then bf16 is measured too
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not copy.timings().complete_for(precision):
        time.sleep(0.5)
    timings = copy.timings()
    assert copy.exists() and timings.complete_for(precision), timings
    assert all(value > 0 for value in dataclasses.asdict(timings).values() if value is not None)
    marker = copy.folder.with_name(f".{copy.folder.name}.converting")
    while time.monotonic() < deadline and marker.exists():
        time.sleep(0.2)
    assert not marker.exists()
    again = load_style_model(path, options=TransferOptions(device="cpu")).prepare(1000.0, policy)
    assert "measured" in again.reason
    best = min(runtimes.faithful_openvino_speeds(timings, precision, policy).values())
    assert again.runtime == ("openvino" if best < timings.speed("pytorch", precision) else "pytorch")


def test_the_start_is_timed_in_a_process_without_openvino_loaded(tmp_path: Path) -> None:
    """A later run pays OpenVINO's import, Core and plugin load; a process that converted
    the copy has them loaded already, and timed the start short (0.2 against 0.6 s)."""
    from styleforge.transfer import background

    model = loaded(small_style_model(tmp_path), "openvino")  # converts: this process has OpenVINO loaded
    copy = runtimes.copy_of(model.net)
    assert "openvino" in sys.modules and copy.exists()
    with pytest.raises(RuntimeError, match="fresh process"):
        background.time_start_here(str(copy.xml), str(copy.blobs), runtimes.openvino_metadata(model.net))
    seconds = background.openvino_start_seconds(copy, runtimes.openvino_metadata(model.net))
    assert 0.0 < seconds < 60.0


def test_a_process_that_asked_for_a_background_conversion_starts_it_at_exit(tmp_path: Path) -> None:
    path = small_style_model(tmp_path)
    home = tmp_path / "home"
    script = ("import sys; from styleforge.config import RuntimePolicy, TransferOptions; "
              "from styleforge.transfer.model import load_style_model; "
              "m = load_style_model(sys.argv[1], options=TransferOptions(device='cpu', precision='fp32')); "
              "print(m.prepare(0.5, RuntimePolicy(background_conversion=True)).reason)")
    env = {**os.environ, "STYLEFORGE_HOME": str(home)}
    result = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0 and "background after this run" in result.stdout, result.stderr
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not any((home / "openvino").glob("*/model.xml"))
                                           or any((home / "openvino").glob(".*.converting"))):
        time.sleep(0.5)
    assert any((home / "openvino").glob("*/model.xml")), "the background conversion left no copy"
    assert not any((home / "openvino").glob(".*.converting")), "the background conversion did not finish"


def test_the_background_process_times_pytorch_with_the_commands_allocator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Without the command's malloc setting its PyTorch timings were up to 1.6x too slow.
    from styleforge.transfer import background

    calls = []
    monkeypatch.setattr(background.os, "nice", lambda increment: 0)  # main() would renice the test worker for good
    monkeypatch.setattr(background, "reuse_freed_memory", lambda: calls.append("reuse") or True)
    monkeypatch.setattr(background, "measure", lambda model_file, options: calls.append(("measure", model_file, options)))
    marker = tmp_path / ".copy.converting"
    marker.write_text("1")
    assert background.main(["model.safetensors", '{"size": 64}', str(marker)]) == 0
    assert calls == ["reuse", ("measure", "model.safetensors", {"size": 64})]
    assert not marker.exists()


def test_a_background_process_that_cannot_set_up_measures_nothing_and_clears_its_marker(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from styleforge.transfer import background
    from styleforge.utils.memory import ALLOCATOR_VARIABLE

    monkeypatch.setattr(background.os, "nice", lambda increment: 0)  # main() would renice the test worker for good
    monkeypatch.setenv(ALLOCATOR_VARIABLE, "jemalloc")  # the real set-up refuses it
    monkeypatch.setattr(background, "measure", lambda *args: pytest.fail("measured after a failed set-up"))
    marker = tmp_path / ".copy.converting"
    marker.write_text("1")
    assert background.main(["model.safetensors", "{}", str(marker)]) == 1
    assert not marker.exists()


def test_cli_runtime_line_json_and_parity(tmp_path: Path) -> None:
    path = small_style_model(tmp_path)
    source = make_photo(tmp_path / "in.png", (61, 47))
    outputs = {}
    for runtime in ("pytorch", "openvino"):
        result = run_cli("transfer", str(source), "--model", str(path), "-o", str(tmp_path / f"{runtime}.png"),
                         "--runtime", runtime, "--device", "cpu", "--precision", "fp32")
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[0].startswith(f"runtime: {runtime} (--runtime {runtime}")
        outputs[runtime] = pixels(Image.open(tmp_path / f"{runtime}.png"))
    assert np.abs(outputs["openvino"] - outputs["pytorch"]).max() <= 1
    result = run_cli("transfer", str(source), "--model", str(path), "-o", str(tmp_path / "auto.png"), "--json",
                     "--precision", "fp32")
    report = json.loads(result.stdout)  # the copy is cached now; a 61x47 photo does not repay OpenVINO's start
    assert report["runtime"] == "pytorch" and "below OpenVINO's start cost" in report["runtime_reason"]


def test_cli_refuses_runtimes_that_do_not_run_the_file(tmp_path: Path) -> None:
    path = small_style_model(tmp_path)
    source = make_photo(tmp_path / "in.png")
    assert_user_error(run_cli("transfer", str(source), "--model", str(path), "-o", str(tmp_path / "o.png"),
                              "--runtime", "onnxruntime"), "--runtime onnxruntime runs exported .onnx files")
    assert_user_error(run_cli("transfer", str(source), "--model", str(path), "-o", str(tmp_path / "o.png"),
                              "--runtime", "openvino", "--compile"), "two compilers")
    assert not (tmp_path / "o.png").exists()
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(b"not onnx")
    assert_user_error(run_cli("transfer", str(source), "--model", str(onnx_file), "-o", str(tmp_path / "o.png"),
                              "--runtime", "pytorch"), "--runtime pytorch runs PyTorch models")
