"""The benchmark scripts run end to end at toy sizes and write JSON the report renders
(benchmarks/*.py): their timings are not checked, their plumbing is."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from styleforge.devices import NATIVE_BF16_ENV

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, tmp_path: Path, *args: str, native_bf16: bool | None = None) -> dict:
    """Run ``benchmarks/<script>.py ARGS --json`` and return its JSON (the floor's matmul
    is measured at 256 in the tests: at the default 4096 it took 12 s of a test worker's core).

    ``native_bf16`` simulates a CPU with (True) or without (False) native bf16 through
    ``STYLEFORGE_NATIVE_BF16``, so both branches run on every CPU; None leaves the
    detection to this machine."""
    out = tmp_path / f"{script}.json"
    env = {**os.environ, "STYLEFORGE_HOME": str(tmp_path / "home")}
    env.pop(NATIVE_BF16_ENV, None)
    if native_bf16 is not None:
        env[NATIVE_BF16_ENV] = "1" if native_bf16 else "0"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{script}.py"), *args, "--json", str(out)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("script", ["gatys", "train", "transfer", "networks"])
def test_a_bad_matmul_size_is_refused_before_any_work(script: str) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{script}.py"), "--matmul-size", "0"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2 and "--matmul-size: expected a whole number >= 1, got '0'" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def _benchmark_module(script: str):
    """``benchmarks/<script>.py`` imported as a module (with its sibling imports)."""
    if str(ROOT / "benchmarks") not in sys.path:
        sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(f"bench_{script}", ROOT / "benchmarks" / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _render(data: dict) -> str:
    return _benchmark_module("report").RENDERERS[data["benchmark"]](data)


@pytest.mark.parametrize(("native_bf16", "bf16_path"), [(False, False), (False, True), (True, True)],
                         ids=["without-native-bf16", "without-native-bf16-bf16-path", "native-bf16"])
def test_transfer_benchmark_compares_with_the_examples_layout(tmp_path: Path, native_bf16: bool, bf16_path: bool) -> None:
    """A CPU with native bf16 adds the examples' bf16 + channels_last baseline and gives
    bf16 rows a matmul rate and a floor; without it a bf16 path asked for is timed (as the
    emulation it is) with neither. Both CPUs are simulated, whichever one runs this."""
    paths = "cl-fp32,cl-bf16" if bf16_path else "cl-fp32"
    data = _run("transfer", tmp_path, "--device", "cpu", "--matmul-size", "256", "--sizes", "24,16x20", "--repeats", "1",
                "--warmup", "0", "--paths", paths, native_bf16=native_bf16)
    rows = {(r["size"], r["path"]): r for r in data["results"]}
    baselines = ("baseline-fp32", "baseline-bf16-cl") if native_bf16 else ("baseline-fp32",)
    assert set(rows) == {(size, path) for size in ("24", "16x20") for path in (*baselines, *paths.split(","))}
    assert data["environment"]["allocator"] in ("reuse", "system")
    for (size, path), row in rows.items():
        assert row["speedup"] == pytest.approx(rows[(size, "baseline-fp32")]["ms"] / row["ms"])
        assert row["psnr_db"] > 30  # the same network, whatever the layout or precision
        assert (row["floor_ms"] is None) == ("bf16" in path and not native_bf16)
    assert data["matmul_gflops"]["fp32"] > 0
    if native_bf16:
        assert data["matmul_gflops"]["bf16"] > 0
    elif bf16_path:
        assert data["matmul_gflops"]["bf16"] is None  # an emulated precision gets no matmul rate and no floor
    else:
        assert "bf16" not in data["matmul_gflops"]
    table = _render(data)
    assert "| 16x20 | styleforge, fp32 channels_last" in table
    assert ("pytorch/examples layout, bf16 + channels_last" in table) == native_bf16, table


def test_networks_benchmark_times_each_network_and_path(tmp_path: Path) -> None:
    data = _run("networks", tmp_path, "--device", "cpu", "--matmul-size", "256", "--sizes", "16", "--repeats", "1", "--train-steps", "0")
    timed = {(r["network"], r["path"]) for r in data["inference"] if "ms" in r}
    assert {("single", "fp32"), ("single", "fp32-cl"), ("multi4", "fp32"), ("adain", "fp32-cl")} <= timed
    assert "| single | 16x16 | 1 |" in _render(data)


def test_gatys_benchmark_compares_with_the_tutorial(tmp_path: Path) -> None:
    data = _run("gatys", tmp_path, "--device", "cpu", "--matmul-size", "256", "--sizes", "64", "--iterations", "3", "--precisions", "fp32")
    rows = {r["impl"]: r for r in data["results"]}
    assert set(rows) == {"tutorial", "naive", "styleforge-fp32"}
    assert rows["tutorial"]["speedup"] == 1.0 and rows["styleforge-fp32"]["loss_vs_fp32_pct"] == 0.0
    assert len({r["floor_s"] for r in rows.values()}) == 1 and rows["tutorial"]["floor_s"] > 0  # one objective's FLOPs
    assert "| 64 | styleforge-fp32 |" in _render(data)


def test_train_benchmark_compares_with_the_examples_step(tmp_path: Path) -> None:
    data = _run("train", tmp_path, "--device", "cpu", "--matmul-size", "256", "--batch-size", "2", "--image-size", "32", "--steps", "2",
                "--precisions", "fp32", "--styles", "2")
    rows = {r["impl"]: r for r in data["results"]}
    assert set(rows) == {"examples-fp32", "naive", "styleforge-fp32, examples layers", "styleforge-fp32, default layers",
                         "styleforge-fp32, default layers, 2 styles"}
    for row in rows.values():
        assert row["speedup"] == pytest.approx(rows["examples-fp32"]["s_per_step"] / row["s_per_step"])
        assert row["steps_per_s"] == pytest.approx(1 / row["s_per_step"]) and row["floor_s"] > 0
    assert rows["styleforge-fp32, examples layers"]["loss_vs_fp32_pct"] == 0.0
    assert "| styleforge-fp32, examples layers |" in _render(data)


def test_train_benchmark_interleaves_the_implementations() -> None:
    import torch

    calls = []
    steppers = {name: (lambda batch, name=name: calls.append((name, int(batch))) or 0.0) for name in ("a", "b", "c")}
    seconds = _benchmark_module("train").time_interleaved(steppers, [torch.tensor(k) for k in range(3)], torch.device("cpu"))
    assert calls == [("a", 0), ("b", 0), ("c", 0), ("a", 1), ("b", 1), ("c", 1), ("a", 2), ("b", 2), ("c", 2)]
    assert {name: len(times) for name, times in seconds.items()} == {"a": 2, "b": 2, "c": 2}


def test_emulated_bf16_convolution_rounds_like_bf16_autocast() -> None:
    import torch
    import torch.nn.functional as F

    fidelity = _benchmark_module("gatys_fidelity")
    grid = fidelity.to_bf16_grid
    torch.manual_seed(0)
    real = torch.nn.Conv2d(24, 32, 3, padding=1)
    emulated = torch.nn.Conv2d(24, 32, 3, padding=1)
    emulated.load_state_dict(real.state_dict())
    fidelity.emulate_bf16_convolutions(emulated)
    x, upstream = torch.randn(1, 24, 10, 12), torch.randn(1, 32, 10, 12)

    def output_and_input_grad(conv: torch.nn.Module, autocast: bool) -> tuple[torch.Tensor, torch.Tensor]:
        image = x.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = conv(image)
        (out.float() * upstream).sum().backward()
        return out.float().detach(), image.grad

    (out, grad), (out_real, grad_real), (out_fp32, grad_fp32) = (
        output_and_input_grad(emulated, True), output_and_input_grad(real, True), output_and_input_grad(emulated, False))
    assert torch.equal(out_fp32, real(x).detach())  # outside autocast the convolution is untouched
    # independent float64 formulas: bf16 operands, exact accumulation, one rounding to bf16
    w64, g64 = grid(real.weight).double(), grid(upstream).double()
    out_exact = grid(F.conv2d(grid(x).double(), w64, grid(real.bias).double(), padding=1).float())
    grad_exact = grid(F.conv_transpose2d(g64, w64, padding=1).float())
    for ours, exact in ((out, out_exact), (grad, grad_exact)):
        assert (ours == exact).float().mean() > 0.99  # fp32 vs float64 accumulation flips a rare tie
        assert ((ours - exact).abs() <= 2**-7 * exact.abs() + 1e-6).all()
    assert (out == out_real).float().mean() > 0.99  # PyTorch's own forward rounds the same way
    # PyTorch's own bf16 backward depends on the CPU and cannot be simulated: with native
    # bf16 (AVX512-BF16, AMX) oneDNN rounds once, as ours does (bit-identical on a Zen 4);
    # emulated (a Zen 3) it rounds more than once. Ours never errs more than it (1 % for
    # the accumulation order of another native kernel).
    from styleforge.devices import flags_have_native_bf16

    if flags_have_native_bf16():  # the hardware itself, not a simulated capability
        assert (grad == grad_real).float().mean() > 0.99
    assert (grad - grad_fp32).pow(2).mean() <= 1.01 * (grad_real - grad_fp32).pow(2).mean()
    assert (grad - grad_fp32).abs().max() > 0


def test_gatys_fidelity_benchmark_scores_each_finish_in_fp32(tmp_path: Path) -> None:
    data = _run("gatys_fidelity", tmp_path, "--size", "48", "--iterations", "4", "--seeds", "2", "--finishes", "0,0.5",
                "--emulate", "on", "--ablate", "--forward-finishes", "0.5")
    rows = {r["config"]: r for r in data["results"]}
    assert list(rows) == ["fp32", "bf16, fp32 finish 0", "bf16, fp32 finish 0.5", "bf16 forward rounding only",
                          "bf16 backward rounding only", "bf16, fp32-forward finish 0.5"]
    assert [r["bf16_steps"] for r in rows.values()] == [0, 4, 2, 4, 4, 2]
    assert rows["fp32"]["vs_fp32_pct"] == 0.0 and all(len(r["losses"]) == 2 for r in rows.values())
    assert len({r["losses"][0] for r in rows.values()}) == 6  # every rounding really differs
    assert "| bf16, fp32 finish 0.5 | 2 |" in _render(data)


def test_gatys_fidelity_benchmark_runs_adam_when_asked(tmp_path: Path) -> None:
    common = ("--size", "32", "--iterations", "3", "--seeds", "1", "--finishes", "0", "--emulate", "on")
    adam = _run("gatys_fidelity", tmp_path / "adam", *common, "--optimizer", "adam")
    lbfgs = _run("gatys_fidelity", tmp_path / "lbfgs", *common)
    assert adam["args"]["optimizer"] == "adam" and "3 Adam steps" in _render(adam)
    assert "3 L-BFGS steps" in _render(lbfgs)
    assert [r["losses"] for r in adam["results"]] != [r["losses"] for r in lbfgs["results"]]
