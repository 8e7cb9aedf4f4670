"""Feed-forward style training: loss falls, corrupt files are skipped, exact resume, DDP."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from PIL import Image

import styleforge as sf
from styleforge.errors import StyleforgeError
from styleforge.training import EpochSampler, check_data, train
from styleforge.transfer import load_style_model
from tests.conftest import make_photo

SMALL = dict(image_size=48, batch_size=4, workers=0, device="cpu", log_every=1, checkpoint_every=0)


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for i in range(16):
        make_photo(folder / ("sub" if i % 3 == 0 else "") / f"img{i:02d}.jpg", size=(64 + i, 56), seed=i)
    return folder


@pytest.fixture
def style_path(tmp_path: Path) -> Path:
    return make_photo(tmp_path / "wave.png", size=(60, 60), seed=100)


def _history(out: Path) -> list[dict[str, str]]:
    import csv

    with open(out / "log.csv") as handle:
        return list(csv.DictReader(handle))


def test_training_lowers_the_loss_and_the_model_reloads(photo_dir: Path, style_path: Path, weight_files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    model_path = train(style_path, photo_dir, out, weights=str(weight_files["pth"]), epochs=6, lr=1e-2,
                       test_image=style_path, progress=False, **{**SMALL, "batch_size": 8, "checkpoint_every": 6})
    totals = [float(r["total"]) for r in _history(out)]
    assert len(totals) == 12
    assert np.mean(totals[-3:]) < 0.5 * np.mean(totals[:3])
    assert model_path == out / "wave.safetensors"
    meta = json.loads((out / "wave.json").read_text())
    assert meta["style_image"] == "wave.png" and meta["steps"] == 12 and meta["network"]["parameters"] == 1_679_235
    assert set(meta["final_losses"]) == {"total", "content", "style", "tv"} and meta["style_thumbnail_png_base64"]
    assert {"preview_step0000006.jpg", "preview_step0000012.jpg", "loss.png", "checkpoint.pt"} <= {p.name for p in out.iterdir()}
    model = load_style_model(model_path)
    result = model.stylize(Image.new("RGB", (37, 29), (200, 30, 60)))
    assert result.size == (37, 29) and result.mode == "RGB"


def test_corrupt_images_are_skipped_and_counted(photo_dir: Path, style_path: Path, weight_files: dict[str, Path], tmp_path: Path) -> None:
    (photo_dir / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (photo_dir / "sub" / "notes.png").write_text("text")
    report = check_data(photo_dir)
    assert report.good == 16 and sorted(p.name for p, _ in report.bad) == ["broken.jpg", "notes.png"]
    out = tmp_path / "run"
    train(style_path, photo_dir, out, weights=str(weight_files["pth"]), epochs=1, progress=False, **SMALL)
    rows = _history(out)
    assert int(rows[-1]["skipped"]) == 2  # 18 files, 4 full batches + 2 dropped: every bad file was met once
    assert len(rows) == 4


def test_resume_continues_exactly(photo_dir: Path, style_path: Path, weight_files: dict[str, Path], tmp_path: Path) -> None:
    common = dict(weights=str(weight_files["pth"]), epochs=2, progress=False, **SMALL)
    straight = train(style_path, photo_dir, tmp_path / "straight", max_steps=6, **common)
    train(style_path, photo_dir, tmp_path / "resumed", max_steps=3, **common)  # stops mid-epoch 1 (4 batches/epoch)
    resumed = train(style_path, photo_dir, tmp_path / "resumed", max_steps=6, resume=True, **common)
    a = load_style_model(straight).net.state_dict()
    b = load_style_model(resumed).net.state_dict()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-6)
    assert [r["total"] for r in _history(tmp_path / "straight")] == [r["total"] for r in _history(tmp_path / "resumed")]


def test_resume_refuses_a_different_configuration(photo_dir: Path, style_path: Path, weight_files: dict[str, Path], tmp_path: Path) -> None:
    train(style_path, photo_dir, tmp_path / "r", weights=str(weight_files["pth"]), max_steps=1, progress=False, **SMALL)
    with pytest.raises(StyleforgeError, match="image_size=48"):
        train(style_path, photo_dir, tmp_path / "r", weights=str(weight_files["pth"]), max_steps=2, resume=True,
              progress=False, **{**SMALL, "image_size": 32})
    with pytest.raises(StyleforgeError, match="no checkpoint"):
        train(style_path, photo_dir, tmp_path / "none", weights=str(weight_files["pth"]), resume=True, progress=False, **SMALL)


def test_epoch_sampler_is_seeded_sharded_and_resumable() -> None:
    full = EpochSampler(10, seed=3, epoch=1).order()
    assert sorted(full) == list(range(10)) and full != EpochSampler(10, seed=3, epoch=2).order()
    assert list(EpochSampler(10, seed=3, epoch=1, start=4)) == full[4:]
    shards = [EpochSampler(10, seed=3, epoch=1, rank=r, world=2).order() for r in range(2)]
    assert shards[0] + shards[1] == full


def test_both_norms_and_upsamplings_train(photo_dir: Path, style_path: Path, weight_files: dict[str, Path], tmp_path: Path) -> None:
    for norm, upsample in (("batch", "deconv"), ("instance", "deconv")):
        path = train(style_path, photo_dir, tmp_path / f"{norm}-{upsample}", weights=str(weight_files["pth"]), max_steps=2,
                     norm=norm, upsample=upsample, progress=False, **SMALL)
        assert load_style_model(path).net.norm == norm


def test_bad_data_folders(style_path: Path, weight_files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(StyleforgeError, match="does not exist"):
        train(style_path, tmp_path / "missing", tmp_path / "o", weights=str(weight_files["pth"]), progress=False, **SMALL)
    (tmp_path / "empty").mkdir()
    with pytest.raises(StyleforgeError, match="holds no"):
        train(style_path, tmp_path / "empty", tmp_path / "o", weights=str(weight_files["pth"]), progress=False, **SMALL)


def _ddp_worker(rank: int, world: int, port: int, args: dict) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    import torch.distributed as td

    from styleforge.training import Trainer

    trainer = Trainer(Image.open(args["style"]).convert("RGB"), "style.png", args["data"], args["out"],
                      sf.TrainOptions(weights=args["weights"], max_steps=2, **SMALL), progress=False)
    trainer.run()
    torch.save(trainer.net.state_dict(), Path(args["out"]) / f"rank{rank}.pt")
    td.destroy_process_group()


def test_ddp_with_two_cpu_processes_keeps_ranks_identical(photo_dir: Path, style_path: Path, weight_files: dict[str, Path], tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp"
    out.mkdir()
    args = {"style": str(style_path), "data": str(photo_dir), "out": str(out), "weights": str(weight_files["pth"])}
    mp.spawn(_ddp_worker, args=(2, port, args), nprocs=2, join=True)
    a, b = (torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    torch.manual_seed(0)  # the trainer seeds the same way before building the network
    initial = sf.TransformNet().state_dict()
    assert any(not torch.equal(a[k], initial[k]) for k in a if k.endswith("weight"))  # it did train
    assert int(_history(out)[-1]["step"]) == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_training_runs_on_cuda(photo_dir: Path, style_path: Path, weight_files: dict[str, Path], tmp_path: Path) -> None:
    path = train(style_path, photo_dir, tmp_path / "gpu", weights=str(weight_files["pth"]), max_steps=2, progress=False,
                 **{**SMALL, "device": "cuda"})
    assert load_style_model(path, device="cuda").stylize(Image.new("RGB", (33, 21))).size == (33, 21)
