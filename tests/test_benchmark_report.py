"""The README's benchmark tables are generated from the JSON the benchmarks wrote
(benchmarks/report.py): they match it now, and a changed figure makes them stale."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _report_module():  # noqa: ANN202 (a module loaded from its path)
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "benchmarks" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_every_table_in_the_docs_matches_its_json() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "report.py"), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_changed_figure_is_rendered_and_an_unknown_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = _report_module()
    monkeypatch.setattr(report, "JSON_DIR", tmp_path)
    data = {"benchmark": "train", "environment": {"threads": 2, "cpu_capability": "AVX2", "torch": "2.13.0"},
            "matmul_gflops": {"fp32": 100.0},
            "results": [{"impl": "examples-fp32", "steps_per_s": 0.5, "s_per_step": 2.0, "speedup": 1.0,
                         "floor_s": 1.0, "x_floor": 2.0, "loss_vs_fp32_pct": None}]}
    (tmp_path / "t.json").write_text(json.dumps(data))
    text = "before\n<!-- table: t -->\nold\n<!-- /table -->\nafter\n"
    fresh = report.refresh(text)
    assert fresh.startswith("before\n<!-- table: t -->\n*CPU, 2 threads, AVX2") and fresh.endswith("<!-- /table -->\nafter\n")
    assert "| examples-fp32 | 0.500 | 2.000 | 1.00 | 1.000 | 2.0 | - |" in fresh
    assert report.refresh(fresh) == fresh
    data["results"][0]["steps_per_s"] = 0.25
    (tmp_path / "t.json").write_text(json.dumps(data))
    assert "| examples-fp32 | 0.250 |" in report.refresh(fresh)
    with pytest.raises(SystemExit, match="no .*missing.json"):
        report.refresh("<!-- table: missing -->\n<!-- /table -->\n")


def test_transfer_ratios_compare_each_size_with_its_own_baseline() -> None:
    report = _report_module()

    def row(size: str, path: str, ms: float) -> dict:
        return {"size": size, "path": path, "ms": ms, "floor_ms": 50.0, "x_floor": ms / 50.0, "psnr_db": 80.0}

    data = {"benchmark": "transfer", "environment": {"threads": 2, "cpu_capability": "AVX2", "torch": "2.13.0"},
            "matmul_gflops": {"fp32": 100.0},
            "results": [row("256", "baseline-fp32", 300.0), row("256", "cl-fp32", 150.0),
                        row("512", "baseline-fp32", 1000.0), row("512", "cl-fp32", 800.0)]}
    table = report.transfer_table(data)
    assert "| 256 | styleforge, fp32 channels_last (default without native bf16) | 150.0 | 2.00 | - |" in table
    assert "| 512 | styleforge, fp32 channels_last (default without native bf16) | 800.0 | 1.25 | - |" in table
