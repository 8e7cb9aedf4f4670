"""``styleforge stylize`` end to end through a subprocess."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import assert_user_error, make_photo, run_cli


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    return {
        "content": make_photo(tmp_path / "content.jpg", size=(64, 40), seed=1),
        "style": make_photo(tmp_path / "style.png", size=(48, 48), seed=2),
        "style2": make_photo(tmp_path / "style2.webp", size=(40, 56), seed=3),
    }


def test_stylize_writes_output_snapshots_log_and_plot(tmp_path: Path, inputs: dict[str, Path], weight_files: dict[str, Path]) -> None:
    out = tmp_path / "out" / "result.png"
    result = run_cli(
        "stylize", str(inputs["content"]), "--style", str(inputs["style"]), "--style", str(inputs["style2"]),
        "--style-blend", "0.7,0.3", "-o", str(out), "--size", "48", "--iterations", "6", "--save-every", "3",
        "--log", str(tmp_path / "loss.csv"), "--plot", str(tmp_path / "loss.png"), "--weights", str(weight_files["pth"]),
        "--device", "cpu", "--json",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["steps"] == 6 and summary["size"] == [48, 30] and not summary["interrupted"]
    assert Image.open(out).size == (48, 30)
    assert sorted(p.name for p in out.parent.iterdir()) == ["result.png", "result_step00003.png", "result_step00006.png"]
    with open(tmp_path / "loss.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == list(range(1, 7))
    assert float(rows[-1]["total"]) < float(rows[0]["total"])
    assert Image.open(tmp_path / "loss.png").format == "PNG"
    # progress lines (not a TTY) on stderr
    assert "stylizing:" in result.stderr


def test_stylize_text_output_and_adam(tmp_path: Path, inputs: dict[str, Path], weight_files: dict[str, Path]) -> None:
    out = tmp_path / "o.jpg"
    result = run_cli("stylize", str(inputs["content"]), "--style", str(inputs["style"]), "-o", str(out), "--size", "32",
                     "--iterations", "3", "--optimizer", "adam", "--preserve-color", "luminance", "--weights",
                     str(weight_files["mat"]), "--quiet", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote {out} (32x20) after 3 steps") and "torch engine" in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize("extra,fragment", [
    (["--style", "MISSING"], "cannot read image"),
    (["--style", "STYLE", "--style-layers", "conv1_1,conv9_1"], "bad layer name 'conv9_1'"),
    (["--style", "STYLE", "--style-blend", "0.7,x"], "bad --style-blend '0.7,x'"),
    (["--style", "STYLE", "--style-blend", "1,1"], "2 blend weights given for 1 style images"),
    (["--style", "STYLE", "--scales", "8,64"], "sizes must be >= 16"),
])
def test_stylize_bad_inputs_exit_2(tmp_path: Path, inputs: dict[str, Path], weight_files: dict[str, Path], extra: list[str], fragment: str) -> None:
    args = [str(inputs["style"]) if a == "STYLE" else str(tmp_path / "missing.jpg") if a == "MISSING" else a for a in extra]
    result = run_cli("stylize", str(inputs["content"]), *args, "-o", str(tmp_path / "o.png"), "--weights", str(weight_files["pth"]))
    assert_user_error(result, fragment)
    assert not (tmp_path / "o.png").exists()


def test_stylize_bad_output_suffix_fails_before_work(tmp_path: Path, inputs: dict[str, Path], weight_files: dict[str, Path]) -> None:
    result = run_cli("stylize", str(inputs["content"]), "--style", str(inputs["style"]), "-o", str(tmp_path / "o.gif"),
                     "--weights", str(weight_files["pth"]))
    assert_user_error(result, "needs an image suffix")


def test_ctrl_c_writes_the_best_image_so_far(tmp_path: Path, inputs: dict[str, Path], weight_files: dict[str, Path]) -> None:
    out = tmp_path / "o.png"
    proc = subprocess.Popen(
        [sys.executable, "-m", "styleforge", "stylize", str(inputs["content"]), "--style", str(inputs["style"]),
         "-o", str(out), "--size", "48", "--iterations", "100000", "--save-every", "2", "--weights", str(weight_files["pth"]),
         "--device", "cpu"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
    )
    deadline = time.monotonic() + 120
    while not (tmp_path / "o_step00002.png").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted after" in stderr and "Traceback" not in stderr
    assert Image.open(out).size == (48, 30)
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name]
