"""The ``styleforge`` command end to end, through a subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import assert_user_error, make_photo, run_cli
from tests.test_images import png_declaring


def test_help_lists_commands_and_defaults() -> None:
    top = run_cli("--help")
    assert top.returncode == 0 and "weights" in top.stdout and "classify" in top.stdout
    sub = run_cli("classify", "--help", env={"COLUMNS": "200"})
    assert sub.returncode == 0 and "(default: 5)" in sub.stdout and "(default: vgg19)" in sub.stdout


def test_weights_import_list_path_classify_remove(weight_files: dict[str, Path], photos: list[Path]) -> None:
    imported = run_cli("weights", "import", str(weight_files["pth"]), "--name", "tiny")
    assert imported.returncode == 0, imported.stderr
    cached = Path(imported.stdout.strip())
    assert cached.name == "tiny.safetensors" and cached.is_file()

    listing = run_cli("weights", "list", "--json")
    rows = {row["name"]: row for row in json.loads(listing.stdout)}
    assert rows["tiny"]["cached"] and not rows["vgg19"]["cached"]
    assert run_cli("weights", "path", "tiny").stdout.strip() == str(cached)

    result = run_cli("classify", *map(str, photos), "--weights", "tiny", "--top-k", "3", "--size", "64", "--batch-size", "2", "--device", "cpu", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [img["path"] for img in report["images"]] == [str(p) for p in photos]
    for img in report["images"]:
        probs = [p["probability"] for p in img["top_k"]]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
        assert {"class_id", "class_name", "probability"} == set(img["top_k"][0])
    assert report["device"].startswith("cpu") and "torchvision convention" in report["weights"]

    removed = run_cli("weights", "remove", "tiny")
    assert removed.returncode == 0 and not cached.exists()


def test_classify_text_output_with_repeat(weight_files: dict[str, Path], photos: list[Path]) -> None:
    result = run_cli("classify", str(photos[0]), "--weights", str(weight_files["mat"]), "--size", "64", "--repeat", "3", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("torch engine on cpu") and "matconvnet convention" in lines[0]
    assert lines[1] == str(photos[0])
    assert lines[2].lstrip().startswith("1.") and "synthetic class" in lines[2]
    assert "timing: torch engine, cpu (" in result.stdout and ", fp32, 1 image per run:" in result.stdout
    assert any(line.strip().startswith("run 1 (warm-up):") for line in lines)
    assert any(line.strip().startswith("run 3:") for line in lines)
    assert any("runs 2-3: mean" in line for line in lines)


@pytest.mark.parametrize("fmt", ["pth", "mat"])
def test_classify_numpy_engine_gives_the_pytorch_top_k(weight_files: dict[str, Path], photos: list[Path], fmt: str) -> None:
    """The course's comparison (section 4.1.7): the from-scratch network agrees with the framework."""
    common = ["classify", *map(str, photos), "--weights", str(weight_files[fmt]), "--size", "64", "--top-k", "5", "--json",
              "--batch-size", "2", "--device", "cpu"]
    torch_run, numpy_run = run_cli(*common), run_cli(*common, "--engine", "numpy", "--repeat", "2")
    assert torch_run.returncode == 0 and numpy_run.returncode == 0, numpy_run.stderr
    t, n = json.loads(torch_run.stdout), json.loads(numpy_run.stdout)
    assert (t["engine"], n["engine"]) == ("torch", "numpy") and n["device"] == "cpu"
    for ti, ni in zip(t["images"], n["images"], strict=True):
        assert [p["class_id"] for p in ti["top_k"]] == [p["class_id"] for p in ni["top_k"]]
        np.testing.assert_allclose([p["probability"] for p in ni["top_k"]], [p["probability"] for p in ti["top_k"]], rtol=1e-4, atol=1e-6)
    assert len(n["run_ms"]) == 2 and n["latency"]["per_image_ms"] > 0


def test_classify_numpy_engine_text_timing_and_refusals(weight_files: dict[str, Path], photos: list[Path]) -> None:
    weights = str(weight_files["mat"])
    result = run_cli("classify", str(photos[0]), "--weights", weights, "--size", "64", "--engine", "numpy", "--repeat", "10")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("numpy engine on cpu; weights:")
    assert "timing: numpy engine, cpu, fp32, 1 image per run:" in result.stdout and "run 10:" in result.stdout
    assert_user_error(run_cli("classify", str(photos[0]), "--weights", weights, "--engine", "numpy", "--precision", "bf16"),
                      "fp32 only")
    assert_user_error(run_cli("classify", str(photos[0]), "--weights", weights, "--engine", "numpy", "--size", "96"),
                      "use an input of 64x64")


def test_classify_without_weights_says_how_to_get_them(photos: list[Path]) -> None:
    result = run_cli("classify", str(photos[0]))
    assert_user_error(result, "styleforge weights download vgg19", "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth")


def test_download_offline_fails_cleanly(tmp_path: Path) -> None:
    # No network here (and none wanted in tests): point the proxy at a closed loopback port.
    env = {"https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
    result = run_cli("weights", "download", "vgg19", "--quiet", env=env)
    assert_user_error(result, "cannot download", "styleforge weights import PATH/vgg19-dcbb9e9d.pth")


def _bad_inputs(folder: Path) -> dict[str, tuple[Path, str]]:
    (folder / "notes.jpg").write_text("just text\n")
    make_photo(folder / "full.jpg", size=(64, 64))
    data = (folder / "full.jpg").read_bytes()
    (folder / "cut.jpg").write_bytes(data[: len(data) // 2])
    return {
        "missing": (folder / "missing.jpg", "no such file"),
        "text": (folder / "notes.jpg", "not a JPEG, PNG, WebP or BMP image"),
        "truncated": (folder / "cut.jpg", "truncated"),
        "bomb": (png_declaring(folder / "bomb.png", 100_000, 100_000), "pixels"),
    }


@pytest.mark.parametrize("case", ["missing", "text", "truncated", "bomb"])
def test_bad_images_exit_2_with_one_line(tmp_path: Path, weight_files: dict[str, Path], case: str) -> None:
    path, reason = _bad_inputs(tmp_path)[case]
    result = run_cli("classify", str(path), "--weights", str(weight_files["pth"]))
    assert_user_error(result, f"cannot read image '{path}'", reason)


@pytest.mark.parametrize("args,fragment", [
    (["classify", "IMG", "--weights", "no-such-weights"], "unknown weights 'no-such-weights'"),
    (["classify", "IMG", "--weights", "/nowhere/w.pth"], "no such file"),
    (["classify", "IMG", "--weights", "WEIGHTS", "--device", "cuda"], "CUDA"),
    (["classify", "IMG", "--weights", "WEIGHTS", "--device", "cpu", "--precision", "fp16"], "fp16 needs CUDA"),
    (["weights", "download", "resnet"], "no download is known for 'resnet'"),
    (["weights", "path", "vgg19"], "styleforge weights download vgg19"),
    (["weights", "import", "/nowhere/file.mat"], "no such file"),
])
def test_bad_names_exit_2_with_one_line(tmp_path: Path, weight_files: dict[str, Path], args: list[str], fragment: str) -> None:
    image = make_photo(tmp_path / "p.png")
    if "--device" in args:
        import torch

        if torch.cuda.is_available():
            pytest.skip("CUDA is available here")
    given = {"IMG": str(image), "WEIGHTS": str(weight_files["pth"])}  # weights are checked before the device
    result = run_cli(*[given.get(a, a) for a in args])
    assert_user_error(result, fragment)


def test_argparse_errors_exit_2(tmp_path: Path) -> None:
    result = run_cli("classify", str(make_photo(tmp_path / "p.png")), "--top-k", "0")
    assert result.returncode == 2 and "must be >= 1" in result.stderr and "Traceback" not in result.stderr


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("styleforge ")


def test_grayscale_input_classifies(tmp_path: Path, weight_files: dict[str, Path]) -> None:
    Image.new("L", (70, 50), 128).save(tmp_path / "gray.bmp")
    result = run_cli("classify", str(tmp_path / "gray.bmp"), "--weights", str(weight_files["pth"]), "--size", "64", "--json")
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["images"][0]["top_k"]) == 5


def test_bf16_precision_agrees_with_fp32(weight_files: dict[str, Path], photos: list[Path]) -> None:
    common = ["classify", *map(str, photos), "--weights", str(weight_files["pth"]), "--size", "64", "--top-k", "10", "--json"]
    exact = json.loads(run_cli(*common).stdout)
    fast = run_cli(*common, "--precision", "bf16")
    assert fast.returncode == 0, fast.stderr
    reduced = json.loads(fast.stdout)
    assert reduced["precision"] == "bf16"
    for a, b in zip(exact["images"], reduced["images"]):
        pa = {p["class_id"]: p["probability"] for p in a["top_k"]}
        pb = {p["class_id"]: p["probability"] for p in b["top_k"]}
        assert max(abs(pa[k] - pb[k]) for k in pa) < 0.05  # bf16 keeps ~3 significant digits
