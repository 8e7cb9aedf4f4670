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

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, tmp_path: Path, *args: str) -> dict:
    out = tmp_path / f"{script}.json"
    env = {**os.environ, "STYLEFORGE_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{script}.py"), *args, "--json", str(out)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


def _render(data: dict) -> str:
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "benchmarks" / "report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)  # type: ignore[union-attr]
    return report.RENDERERS[data["benchmark"]](data)


@pytest.mark.parametrize("emulated", [False, True])
def test_transfer_benchmark_compares_with_the_examples_layout(tmp_path: Path, emulated: bool) -> None:
    paths = "cl-fp32,cl-bf16" if emulated else "cl-fp32"
    data = _run("transfer", tmp_path, "--device", "cpu", "--sizes", "24,16x20", "--repeats", "1", "--warmup", "0", "--paths", paths)
    rows = {(r["size"], r["path"]): r for r in data["results"]}
    assert set(rows) == {(size, path) for size in ("24", "16x20") for path in ("baseline-fp32", *paths.split(","))}
    assert data["environment"]["allocator"] in ("reuse", "system")
    for (size, path), row in rows.items():
        assert row["speedup"] == pytest.approx(rows[(size, "baseline-fp32")]["ms"] / row["ms"])
        assert row["psnr_db"] > 30  # the same network, whatever the layout or precision
    from styleforge.devices import cpu_has_bf16

    if emulated and not cpu_has_bf16():  # an emulated precision gets no matmul rate and no floor
        assert data["matmul_gflops"]["bf16"] is None and rows[("24", "cl-bf16")]["floor_ms"] is None
    assert "| 16x20 | styleforge, fp32 channels_last" in _render(data)


def test_networks_benchmark_times_each_network_and_path(tmp_path: Path) -> None:
    data = _run("networks", tmp_path, "--device", "cpu", "--sizes", "16", "--repeats", "1", "--train-steps", "0")
    timed = {(r["network"], r["path"]) for r in data["inference"] if "ms" in r}
    assert {("single", "fp32"), ("single", "fp32-cl"), ("multi4", "fp32"), ("adain", "fp32-cl")} <= timed
    assert "| single | 16x16 | 1 |" in _render(data)


def test_gatys_benchmark_compares_with_the_tutorial(tmp_path: Path) -> None:
    data = _run("gatys", tmp_path, "--device", "cpu", "--sizes", "64", "--iterations", "3", "--precisions", "fp32")
    rows = {r["impl"]: r for r in data["results"]}
    assert set(rows) == {"tutorial", "naive", "styleforge-fp32"}
    assert rows["tutorial"]["speedup"] == 1.0 and rows["styleforge-fp32"]["loss_vs_fp32_pct"] == 0.0
    assert len({r["floor_s"] for r in rows.values()}) == 1 and rows["tutorial"]["floor_s"] > 0  # one objective's FLOPs
    assert "| 64 | styleforge-fp32 |" in _render(data)
