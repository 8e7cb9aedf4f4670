"""styleforge bench and its fidelity measures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from styleforge.deploy.fidelity import psnr, ssim
from tests.conftest import make_photo, run_cli


def _image(seed: int, size: tuple[int, int] = (40, 30)) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8))


def test_psnr_and_ssim_on_known_cases() -> None:
    img = _image(1)
    shifted = Image.fromarray((np.asarray(img, dtype=np.int16) + 1).clip(0, 255).astype(np.uint8))
    assert psnr(img, img) == float("inf") and ssim(img, img) == 1.0
    exact = 10 * np.log10(255**2 / np.mean((np.asarray(shifted, float) - np.asarray(img, float)) ** 2))
    assert abs(psnr(shifted, img) - exact) < 1e-9 and 48 < psnr(shifted, img) < 48.2  # MSE of about 1
    noisy = [Image.fromarray((np.asarray(img, float) + np.random.default_rng(2).normal(0, s, (30, 40, 3))).clip(0, 255).astype(np.uint8))
             for s in (2, 10, 40)]
    scores = [ssim(n, img) for n in noisy]
    assert scores[0] > scores[1] > scores[2] and scores[0] < 1.0
    assert abs(ssim(noisy[1], img) - ssim(img, noisy[1])) < 1e-12


def test_bench_style_model_rows(style_model: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        make_photo(data / f"{i}.png", size=(50, 40), seed=i)
    done = run_cli("bench", "--model", str(style_model), "--sizes", "32", "--data", str(data), "--repeat", "1", "--json")
    assert done.returncode == 0, done.stderr
    rows = {r["path"]: r for r in json.loads(done.stdout)}
    assert set(rows) == {"pytorch fp32 eager", "pytorch default", "onnxruntime fp32", "onnxruntime int8", "openvino int8",
                         "onnxruntime int16"}
    assert rows["pytorch fp32 eager"]["psnr_db"] is None and rows["pytorch fp32 eager"]["ssim"] == 1.0  # the reference itself
    assert rows["onnxruntime fp32"]["psnr_db"] is None or rows["onnxruntime fp32"]["psnr_db"] > 50
    assert rows["onnxruntime int16"]["psnr_db"] > rows["onnxruntime int8"]["psnr_db"] > 20
    assert all(r["ms"] > 0 and r["size"] == 32 for r in rows.values())
    assert "onnxruntime" in rows["onnxruntime int8"]["device"] and "openvino" in rows["openvino int8"]["device"]
    assert abs(rows["openvino int8"]["psnr_db"] - rows["onnxruntime int8"]["psnr_db"]) < 3  # one file, two runtimes


def test_bench_classifier_rows_and_text(classifier_weights: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        make_photo(data / f"{i}.png", size=(240, 230), seed=i)
    done = run_cli("bench", "--weights", str(classifier_weights), "--data", str(data), "--repeat", "1")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "fidelity against PyTorch fp32 over 3 image(s)" in lines[0]
    fp32 = next(line for line in lines if "onnxruntime fp32" in line).split()
    assert fp32[-2] == "1.000"  # the float ONNX graph agrees on every image
    assert all(any(row in line for line in lines) for row in ("onnxruntime int8", "openvino int8", "onnxruntime int16"))
