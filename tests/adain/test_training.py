"""Training the AdaIN decoder: a tiny run lowers both loss terms on a fixed batch, resume
is exact, the paired sampler is seeded and resumable, the loss terms match an
independent computation, and a resumed run refuses another style folder."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import styleforge as sf
from styleforge.config import AdaINTrainOptions
from styleforge.errors import StyleforgeError
from styleforge.nets.adain import adain
from styleforge.training.adain import AdaINTrainer, PairSampler, train_adain
from styleforge.training.loop import EpochSampler
from styleforge.transfer.model import load_style_model
from tests.conftest import make_photo

SMALL = dict(image_size=32, batch_size=4, workers=0, device="cpu", log_every=1, checkpoint_every=0, precision="fp32")


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "photos").mkdir()
    (tmp_path / "paintings").mkdir()
    for i in range(8):
        make_photo(tmp_path / "photos" / f"p{i}.png", (48, 40), seed=i)
    for i in range(3):
        make_photo(tmp_path / "paintings" / f"s{i}.png", (36, 52), seed=50 + i)
    return tmp_path / "paintings", tmp_path / "photos"


def _history(out: Path) -> list[dict[str, str]]:
    with open(out / "log.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _trainer(folders: tuple[Path, Path], out: Path, weight_files: dict[str, Path], **overrides: object) -> AdaINTrainer:
    opts = AdaINTrainOptions(**{**SMALL, "weights": str(weight_files["pth"]), **overrides})
    return AdaINTrainer(folders[0], folders[1], out, opts, progress=False)


def _fixed_batch(trainer: AdaINTrainer) -> tuple[torch.Tensor, torch.Tensor]:
    data = trainer.dataset
    return (torch.stack([data.photos[i] for i in range(4)]), torch.stack([data.styles[i % 3] for i in range(4)]))


def test_a_tiny_run_lowers_both_loss_terms(folders: tuple[Path, Path], weight_files: dict[str, Path], tmp_path: Path) -> None:
    trainer = _trainer(folders, tmp_path / "run", weight_files, lr=2e-3, lr_decay=0.0, epochs=60)  # 120 steps, paper weights
    batch = _fixed_batch(trainer)
    with torch.no_grad():
        before = {k: float(v) for k, v in trainer.losses(batch).items()}
    trainer.run()
    with torch.no_grad():
        after = {k: float(v) for k, v in trainer.losses(batch).items()}
    # The style term falls first and fastest (matching channel statistics is easy); the
    # content term (inverting AdaIN at relu4_1) follows more slowly.
    assert after["content"] < 0.9 * before["content"] and after["style"] < 0.5 * before["style"], (before, after)


def test_loss_terms_match_an_independent_computation(folders: tuple[Path, Path], weight_files: dict[str, Path], tmp_path: Path) -> None:
    trainer = _trainer(folders, tmp_path / "run", weight_files, content_weight=2.0, style_weight=3.0)
    photos, styles = _fixed_batch(trainer)
    vgg, decoder = trainer.net.encoder, trainer.net.decoder
    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1"]

    def features(pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        return vgg.extract(vgg.normalize(pixels / 255.0), layers)

    with torch.no_grad():
        s = features(styles.float())
        t = adain(features(photos.float())["relu4_1"], s["relu4_1"])
        g = features(decoder(t) * 255.0)
        content = ((g["relu4_1"] - t) ** 2).mean()
        style = sum(F.mse_loss(g[l].mean((2, 3)), s[l].mean((2, 3))) + F.mse_loss(g[l].std((2, 3), unbiased=False), s[l].std((2, 3), unbiased=False))
                    for l in layers)
        got = trainer.losses((photos, styles))
    torch.testing.assert_close(got["content"], 2.0 * content, rtol=1e-5, atol=0)
    torch.testing.assert_close(got["style"], 3.0 * style, rtol=1e-3, atol=0)  # eps in the deviation: sqrt(var + 1e-5)


def test_reduced_precision_keeps_the_encoder_channels_last_with_the_nchw_losses(
        folders: tuple[Path, Path], weight_files: dict[str, Path], tmp_path: Path) -> None:
    """In bf16 the frozen encoder holds channels_last weights, as Johnson training's VGG19
    does; its loss terms are those of the same trainer with the encoder in NCHW. fp32 on
    the CPU keeps NCHW (bit-identical to a plain loop)."""
    trainer = _trainer(folders, tmp_path / "bf16", weight_files, precision="bf16")
    assert trainer.net.encoder.conv1_1.weight.is_contiguous(memory_format=torch.channels_last)
    assert not trainer.net.encoder.conv1_1.weight.is_contiguous()
    batch = _fixed_batch(trainer)
    with torch.no_grad():
        channels_last = {k: float(v) for k, v in trainer.losses(batch).items()}
        trainer.net.encoder.to(memory_format=torch.contiguous_format)
        nchw = {k: float(v) for k, v in trainer.losses(batch).items()}
    for term in ("content", "style", "total"):
        assert channels_last[term] == pytest.approx(nchw[term], rel=2e-2), term
    fp32 = _trainer(folders, tmp_path / "fp32", weight_files, precision="fp32")
    assert fp32.net.encoder.conv1_1.weight.is_contiguous()


def test_resume_continues_exactly(folders: tuple[Path, Path], weight_files: dict[str, Path], tmp_path: Path) -> None:
    common = dict(weights=str(weight_files["pth"]), epochs=3, progress=False, **SMALL)
    straight = train_adain(*folders, tmp_path / "straight", max_steps=5, **common)
    train_adain(*folders, tmp_path / "resumed", max_steps=3, **common)  # stops inside epoch 2 (2 batches/epoch)
    resumed = train_adain(*folders, tmp_path / "resumed", max_steps=5, resume=True, **common)
    style = (str(folders[0] / "s0.png"),)
    a = load_style_model(straight, options=sf.TransferOptions(device="cpu", styles=style)).net.state_dict()
    b = load_style_model(resumed, options=sf.TransferOptions(device="cpu", styles=style)).net.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["total"] for r in _history(tmp_path / "straight")] == [r["total"] for r in _history(tmp_path / "resumed")]


def test_resume_refuses_another_style_folder(folders: tuple[Path, Path], weight_files: dict[str, Path], tmp_path: Path) -> None:
    common = dict(weights=str(weight_files["pth"]), progress=False, **SMALL)
    train_adain(*folders, tmp_path / "run", max_steps=1, **common)
    make_photo(folders[0] / "extra.png", (40, 40), seed=99)
    with pytest.raises(StyleforgeError, match="another style images"):
        train_adain(*folders, tmp_path / "run", max_steps=2, resume=True, **common)


def test_pair_sampler_is_seeded_cycles_the_styles_and_resumes() -> None:
    photos = EpochSampler(10, seed=3, epoch=1)
    pairs = list(PairSampler(photos, styles=4))
    assert [p for p, _ in pairs] == photos.order()
    styles = [s for _, s in pairs]
    assert sorted(styles[:4]) == [0, 1, 2, 3] and styles[4:8] == styles[:4]  # a permutation, cycled
    assert list(PairSampler(EpochSampler(10, seed=3, epoch=1, start=6), styles=4)) == pairs[6:]
    assert [s for _, s in PairSampler(EpochSampler(10, seed=3, epoch=2), 4)] != styles  # a new order each epoch
    ranks = [list(PairSampler(EpochSampler(10, seed=3, epoch=1, rank=r, world=2), 4)) for r in (0, 1)]
    assert [s for _, s in ranks[1]][:1] != [s for _, s in ranks[0]][:1]  # ranks start at their own offset


def test_bad_options_are_refused(folders: tuple[Path, Path], weight_files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(StyleforgeError, match="image size must be >= 16"):
        train_adain(*folders, tmp_path / "a", weights=str(weight_files["pth"]), **{**SMALL, "image_size": 8})
    with pytest.raises(StyleforgeError, match="lr decay"):
        train_adain(*folders, tmp_path / "b", weights=str(weight_files["pth"]), lr_decay=-1.0, **SMALL)
    with pytest.raises(StyleforgeError, match="does not exist"):
        train_adain(tmp_path / "missing", folders[1], tmp_path / "c", weights=str(weight_files["pth"]), **SMALL)
