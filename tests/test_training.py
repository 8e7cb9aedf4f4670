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
from styleforge.config import COURSE_TRAIN_LOSS_WEIGHTS, TrainOptions
from styleforge.errors import StyleforgeError
from styleforge.training.johnson import EpochSampler, PhotoFolder, Trainer, train
from styleforge.training.plan import check_data
from styleforge.transfer.model import load_style_model
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


def test_keep_models_writes_a_loadable_model_of_each_checkpoint_step(photo_dir: Path, style_path: Path, weight_files: dict[str, Path], tmp_path: Path) -> None:
    common = dict(weights=str(weight_files["pth"]), epochs=2, progress=False, **{**SMALL, "checkpoint_every": 2})
    train(style_path, photo_dir, tmp_path / "kept", max_steps=4, keep_models=True, **common)
    two_steps = train(style_path, photo_dir, tmp_path / "two", max_steps=2, **common)
    kept = tmp_path / "kept"
    assert {"wave_step0000002.safetensors", "wave_step0000002.json", "wave_step0000004.safetensors"} <= {p.name for p in kept.iterdir()}
    step2 = load_style_model(kept / "wave_step0000002.safetensors")
    assert step2.metadata["steps"] == 2
    expected = load_style_model(two_steps).net.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in step2.net.state_dict().items())
    from_checkpoint = load_style_model(kept / "checkpoint.pt")  # the last checkpoint: step 4
    final = load_style_model(kept / "wave.safetensors").net.state_dict()
    assert from_checkpoint.metadata["steps"] == 4 and from_checkpoint.metadata["style_image"] == "wave.png"
    assert all(torch.equal(v, final[k]) for k, v in from_checkpoint.net.state_dict().items())
    assert not list((tmp_path / "two").glob("*_step*"))  # off by default


def test_resume_refuses_a_different_configuration(photo_dir: Path, style_path: Path, weight_files: dict[str, Path], tmp_path: Path) -> None:
    train(style_path, photo_dir, tmp_path / "r", weights=str(weight_files["pth"]), max_steps=1, progress=False, **SMALL)
    with pytest.raises(StyleforgeError, match="image_size=48"):
        train(style_path, photo_dir, tmp_path / "r", weights=str(weight_files["pth"]), max_steps=2, resume=True,
              progress=False, **{**SMALL, "image_size": 32})
    with pytest.raises(StyleforgeError, match="no checkpoint"):
        train(style_path, photo_dir, tmp_path / "none", weights=str(weight_files["pth"]), resume=True, progress=False, **SMALL)


def _texture(side: int, period: int = 8, seed: int = 5) -> Image.Image:
    cell = np.random.default_rng(seed).integers(0, 256, size=(period, period, 3), dtype=np.uint8)
    return Image.fromarray(np.tile(cell, (side // period, side // period, 1)))


def test_style_size_keeps_the_style_loss_of_the_same_texture(photo_dir: Path, weight_files: dict[str, Path], tmp_path: Path) -> None:
    """--style-size 2x the crop (4x the pixels) on the same texture: a style loss of the
    same order; with targets summed over the style's pixels it was ~23x larger."""
    vgg = sf.load_vgg19(str(weight_files["pth"]))
    batch = torch.stack([PhotoFolder(photo_dir, 48)[i] for i in range(4)])

    def style_term(style: Image.Image, style_size: int) -> float:
        opts = TrainOptions(**{**SMALL, "style_size": style_size, "precision": "fp32"})
        trainer = Trainer(style, "tex.png", photo_dir, tmp_path / f"run{style_size}", opts, vgg=vgg, progress=False)
        with torch.no_grad():
            return float(trainer.losses(batch)["style"])

    ratio = style_term(_texture(96), 96) / style_term(_texture(48), 48)
    assert 0.67 < ratio < 1.5


def _course_training_loss(trainer: Trainer, photos: torch.Tensor, style: Image.Image) -> dict[str, float]:
    """The course's loss (its optimize.py: formulas 4.4-4.6 with CONTENT_WEIGHT 7.5,
    STYLE_WEIGHT 100 summed over the layers, TV_WEIGHT 200 on the 0-255 output), written
    independently in NumPy with NHWC features as the course lays them out."""
    vgg = trainer.vgg
    layers = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")

    def nhwc(image: torch.Tensor, names: tuple[str, ...]) -> dict[str, np.ndarray]:
        with torch.no_grad():
            feats = vgg.extract(vgg.normalize(image / 255.0), list(names))
        return {k: v.permute(0, 2, 3, 1).double().numpy() for k, v in feats.items()}

    with torch.no_grad():
        preds = trainer.net(photos.float())
    style_pixels = torch.from_numpy(np.asarray(style, dtype=np.float32)).permute(2, 0, 1)[None]
    ys, yc, ss = nhwc(preds, ("relu4_2", *layers)), nhwc(photos.float(), ("relu4_2",)), nhwc(style_pixels, layers)
    batch = photos.shape[0]
    diff = ys["relu4_2"] - yc["relu4_2"]
    content = 7.5 * (2 * (diff**2).sum() / 2) / diff.size
    style = 0.0
    for layer in layers:
        f = ys[layer].reshape(batch, -1, ys[layer].shape[-1])
        grams = f.transpose(0, 2, 1) @ f / f[0].size
        s_flat = ss[layer].reshape(-1, ss[layer].shape[-1])
        style_gram = s_flat.T @ s_flat / s_flat.size
        style += (2 * ((grams - style_gram) ** 2).sum() / 2) / style_gram.size
    style = 100.0 * style / batch
    p = preds.permute(0, 2, 3, 1).double().numpy()
    y_tv = ((p[:, 1:] - p[:, :-1]) ** 2).sum() / 2
    x_tv = ((p[:, :, 1:] - p[:, :, :-1]) ** 2).sum() / 2
    tv = 200.0 * 2 * (x_tv / p[0, :, 1:].size + y_tv / p[0, 1:].size) / batch
    return {"content": content, "style": style, "tv": tv}


def test_matconvnet_training_defaults_are_the_course_settings(photo_dir: Path, weight_files: dict[str, Path], tmp_path: Path) -> None:
    """With the course's .mat file the default weights reproduce the course's loss exactly."""
    style = _texture(48, seed=3)
    opts = TrainOptions(**{**SMALL, "precision": "fp32"})
    trainer = Trainer(style, "s.png", photo_dir, tmp_path / "run", opts, vgg=sf.load_vgg19(str(weight_files["mat"])), progress=False)
    assert (trainer.alpha, trainer.beta, trainer.gamma) == COURSE_TRAIN_LOSS_WEIGHTS
    assert TrainOptions().loss_weights("my-own-0-255", 255.0) == COURSE_TRAIN_LOSS_WEIGHTS
    assert TrainOptions(tv_weight=0.0).loss_weights("matconvnet", 255.0) == (7.5, 500.0, 0.0)
    photos = torch.stack([PhotoFolder(photo_dir, 48)[i] for i in range(4)])
    with torch.no_grad():
        ours = {k: float(v) for k, v in trainer.losses(photos).items()}
    course = _course_training_loss(trainer, photos, style)
    for term in ("content", "style", "tv"):
        assert ours[term] == pytest.approx(course[term], rel=1e-4), term


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

    from styleforge.training.johnson import Trainer

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


def test_reduced_precision_keeps_vgg19_channels_last_with_the_nchw_losses(photo_dir: Path, style_path: Path,
                                                                          weight_files: dict[str, Path], tmp_path: Path) -> None:
    """In bf16, VGG19 holds channels_last weights (oneDNN's bf16 kernels would otherwise
    reorder every activation); the losses are those of the same trainer in NCHW."""
    vgg = sf.load_vgg19(str(weight_files["pth"]))
    opts = TrainOptions(**{**SMALL, "precision": "bf16"})
    trainer = Trainer(Image.open(style_path).convert("RGB"), "wave.png", photo_dir, tmp_path / "run", opts, vgg=vgg,
                      progress=False)
    assert trainer.vgg.conv1_1.weight.is_contiguous(memory_format=torch.channels_last)
    batch = torch.stack([trainer.dataset[i] for i in range(4)])
    channels_last = {k: float(v.detach()) for k, v in trainer.losses(batch, 0).items()}
    trainer.vgg.to(memory_format=torch.contiguous_format)
    nchw = {k: float(v.detach()) for k, v in trainer.losses(batch, 0).items()}
    for term in ("content", "style", "tv", "total"):
        assert channels_last[term] == pytest.approx(nchw[term], rel=2e-2), term
    fp32 = Trainer(Image.open(style_path).convert("RGB"), "wave.png", photo_dir, tmp_path / "fp32",
                   TrainOptions(**{**SMALL, "precision": "fp32"}), vgg=sf.load_vgg19(str(weight_files["pth"])), progress=False)
    assert fp32.vgg.conv1_1.weight.is_contiguous()
