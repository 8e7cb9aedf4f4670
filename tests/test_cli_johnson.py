"""``styleforge train``, ``transfer`` and ``check-data`` end to end through a subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import assert_user_error, make_photo, run_cli


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(8):
        make_photo(folder / f"p{i}.jpg", size=(50, 40), seed=i)
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff garbage")
    return folder


def test_train_then_transfer_files_and_folders(tmp_path: Path, photos: Path, weight_files: dict[str, Path]) -> None:
    style = make_photo(tmp_path / "style.png", size=(40, 40), seed=50)
    out = tmp_path / "model"
    trained = run_cli("train", "--style", str(style), "--data", str(photos), "--out", str(out), "--weights", str(weight_files["pth"]),
                      "--image-size", "32", "--batch-size", "2", "--max-steps", "4", "--checkpoint-every", "2", "--log-every", "2",
                      "--test-image", str(style), "--workers", "1", "--device", "cpu")
    assert trained.returncode == 0, trained.stderr
    model = Path(trained.stdout.strip())
    assert model == out / "style.safetensors" and model.is_file() and (out / "style.json").is_file()
    assert "training on cpu" in trained.stderr and "step 4/4" in trained.stderr and "1 unreadable skipped" in trained.stderr
    assert {"preview_step0000002.jpg", "preview_step0000004.jpg", "log.csv", "loss.png"} <= {p.name for p in out.iterdir()}

    single = run_cli("transfer", "--model", str(model), str(style), "-o", str(tmp_path / "one.jpg"), "--device", "cpu")
    assert single.returncode == 0, single.stderr
    assert Image.open(tmp_path / "one.jpg").size == (40, 40) and "ms per image" in single.stdout

    many = run_cli("transfer", "--model", str(model), str(photos), str(style), "-o", str(tmp_path / "out"), "--size", "36",
                   "--tile", "24", "--json", "--device", "cpu")
    assert many.returncode == 1  # done in part: the corrupt file was skipped, and that is reported
    report = json.loads(many.stdout)
    assert len(report["images"]) == 9 and [s["input"] for s in report["skipped"]] == [str(photos / "corrupt.jpg")]
    assert Image.open(tmp_path / "out" / "photos" / "p3.jpg").size == (36, 29)
    assert (tmp_path / "out" / "style.png").is_file()


def test_check_data(photos: Path) -> None:
    result = run_cli("check-data", str(photos), "--json")
    assert result.returncode == 1  # some files are unreadable
    report = json.loads(result.stdout)
    assert report["good"] == 8 and [u["path"] for u in report["unreadable"]] == [str(photos / "corrupt.jpg")]


@pytest.mark.parametrize("case", ["missing-data", "empty-data", "bad-model", "missing-input"])
def test_bad_inputs_exit_2(tmp_path: Path, weight_files: dict[str, Path], case: str) -> None:
    style = make_photo(tmp_path / "style.png")
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.safetensors").write_bytes(b"junk")
    if case == "missing-data":
        result = run_cli("train", "--style", str(style), "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o"),
                         "--weights", str(weight_files["pth"]))
        assert_user_error(result, "does not exist")
    elif case == "empty-data":
        result = run_cli("train", "--style", str(style), "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "o"),
                         "--weights", str(weight_files["pth"]))
        assert_user_error(result, "holds no")
    elif case == "bad-model":
        result = run_cli("transfer", "--model", str(tmp_path / "bad.safetensors"), str(style), "-o", str(tmp_path / "x.png"))
        assert_user_error(result, "cannot read model")
    else:
        result = run_cli("transfer", "--model", str(tmp_path / "bad.safetensors"), str(tmp_path / "nope.jpg"), "-o", str(tmp_path / "x.png"))
        assert_user_error(result, "no such file")


def test_torchrun_two_cpu_processes(tmp_path: Path, photos: Path, weight_files: dict[str, Path]) -> None:
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    style = make_photo(tmp_path / "style.png", size=(40, 40), seed=51)
    out = tmp_path / "ddp"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
         "--master_port", str(port), "-m", "styleforge", "train", "--style", str(style), "--data", str(photos), "--out", str(out),
         "--weights", str(weight_files["pth"]), "--image-size", "32", "--batch-size", "2", "--max-steps", "2", "--workers", "0",
         "--device", "cpu", "--log-every", "1"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "2 processes" in proc.stderr and "step 2/2" in proc.stderr
    assert (out / "style.safetensors").is_file()
    assert proc.stdout.strip() == str(out / "style.safetensors")  # printed once, by rank 0


def _tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def test_ctrl_c_leaves_a_model_and_a_checkpoint_that_both_stylise(tmp_path: Path, photos: Path, weight_files: dict[str, Path]) -> None:
    """A real SIGINT mid-training: exit 130, the resumable checkpoint and a loadable
    <style>_stepN model, both holding the network of step N and stylising identically."""
    import re
    import signal
    import subprocess
    import sys

    import torch

    style = make_photo(tmp_path / "style.png", size=(40, 40), seed=52)
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "styleforge", "train", "--style", str(style), "--data", str(photos), "--out", str(out),
         "--weights", str(weight_files["pth"]), "--image-size", "32", "--batch-size", "2", "--epochs", "1000",
         "--checkpoint-every", "0", "--log-every", "1", "--workers", "0", "--device", "cpu"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith("step 3/"):
            proc.send_signal(signal.SIGINT)
            break
    stdout, rest = proc.communicate(timeout=120)
    stderr = "".join(seen) + rest
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    step = int(re.search(r"interrupted at step (\d+)", stderr).group(1))
    assert step >= 3
    model = out / f"style_step{step:07d}.safetensors"
    assert model.is_file() and json.loads(model.with_suffix(".json").read_text())["steps"] == step
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    assert checkpoint["state"]["step"] == step
    saved = _tensors(model)
    assert saved.keys() == checkpoint["model"].keys()
    assert all(torch.equal(saved[k], checkpoint["model"][k]) for k in saved)

    results = {}
    for name, source in (("checkpoint", out / "checkpoint.pt"), ("model", model)):
        target = tmp_path / f"{name}.png"
        done = run_cli("transfer", "--model", str(source), str(style), "-o", str(target), "--device", "cpu", "--precision", "fp32")
        assert done.returncode == 0, done.stderr
        results[name] = np.asarray(Image.open(target))
    assert np.array_equal(results["checkpoint"], results["model"])

    resumed = run_cli("train", "--style", str(style), "--data", str(photos), "--out", str(out), "--weights", str(weight_files["pth"]),
                      "--image-size", "32", "--batch-size", "2", "--max-steps", str(step + 2), "--resume", "--workers", "0",
                      "--device", "cpu", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert torch.load(out / "checkpoint.pt", weights_only=True)["state"]["step"] == step + 2


def test_resume_after_a_run_that_stopped_on_an_epochs_last_batch(tmp_path: Path, photos: Path,
                                                                   weight_files: dict[str, Path]) -> None:
    """9 files in batches of 2 make 4 batches an epoch; a run stopped after step 4 (by
    --max-steps, or Ctrl-C landing on that batch) has used up its epoch but not yet
    counted it. Resuming must go on into the next epoch, not mistake the empty rest of
    the old one for an epoch of unreadable images."""
    import torch

    style = make_photo(tmp_path / "style.png", size=(40, 40), seed=53)
    out = tmp_path / "run"
    common = ("train", "--style", str(style), "--data", str(photos), "--out", str(out), "--weights", str(weight_files["pth"]),
              "--image-size", "32", "--batch-size", "2", "--workers", "0", "--device", "cpu", "--quiet")
    first = run_cli(*common, "--max-steps", "4")
    assert first.returncode == 0, first.stderr
    resumed = run_cli(*common, "--max-steps", "6", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    state = torch.load(out / "checkpoint.pt", weights_only=True)["state"]
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (6, 1, 2)


def test_transfer_refuses_a_file_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    import torch

    style = make_photo(tmp_path / "style.png")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a zip")
    assert_user_error(run_cli("transfer", "--model", str(tmp_path / "other.pt"), str(style), "-o", str(tmp_path / "x.png")),
                      "not a styleforge training checkpoint")
    assert_user_error(run_cli("transfer", "--model", str(tmp_path / "junk.pt"), str(style), "-o", str(tmp_path / "x.png")),
                      "cannot read checkpoint")
