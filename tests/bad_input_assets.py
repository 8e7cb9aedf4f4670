"""Files for the bad-input tests: good inputs to combine with one bad thing at a time,
and the bad files themselves, made once per test session."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from tests.conftest import make_photo
from tests.synthetic import random_weights, write_matconvnet_mat, write_torchvision_pth
from tests.test_images import png_declaring


@dataclass
class Assets:
    """Paths of every prepared file (all under ``root``)."""

    root: Path
    photo: Path  # 64x48 PNG
    photo_b: Path  # another 64x48 PNG
    style: Path  # 40x40 PNG
    pth: Path  # tiny VGG19, torchvision layout
    mat: Path  # tiny VGG19, MatConvNet layout
    model: Path  # a tiny trained style model (.safetensors + .json)
    run: Path  # the training folder of that model (checkpoint.pt inside)
    data: Path  # folder of 4 photos for training
    text_jpg: Path
    truncated_jpg: Path
    empty_png: Path
    bomb_png: Path
    thin_png: Path  # 1000x1
    long_png: Path  # 100000x1
    wide_png: Path  # 64x32: 2:1
    fifo_jpg: Path
    folder: Path  # an empty folder
    same_a: Path  # x/a.png
    same_b: Path  # y/a.png
    unreadable_data: Path  # a folder whose every image is unreadable
    nan_pth: Path
    nan_mat: Path
    nan_model: Path
    nan_checkpoint: Path
    wrong_key_model: Path
    bad_json_model: Path
    evil_pth: Path
    text_pth: Path
    int_pth: Path
    truncated_pth: Path
    truncated_mat: Path
    truncated_safetensors: Path
    plain_dict_pt: Path
    batchnorm_pth: Path
    a_file: Path  # a plain file, to be named where a folder is expected
    service_unknown_key: Path  # TOML with a setting that does not exist
    service_bad_value: Path  # TOML with text where a number belongs
    clip: Path  # a 12-frame 160x96 H.264 clip with AAC audio
    text_mp4: Path  # text named .mp4
    truncated_mp4: Path  # the clip cut in half (its index is at the end: unreadable)
    text_t7: Path  # text named .t7
    adain_model: Path  # an AdaIN model (random decoder on the tiny VGG19)


def _trained_model(root: Path, style: Path, data: Path, pth: Path) -> tuple[Path, Path]:
    from styleforge.training.johnson import train

    run = root / "run"
    model = train(style, data, run, weights=str(pth), image_size=32, batch_size=2, max_steps=1, workers=0,
                  device="cpu", checkpoint_every=0, progress=False, precision="fp32")
    return model, run


def _nan_copy_of_model(model: Path, target: Path) -> Path:
    from safetensors import safe_open

    with safe_open(str(model), framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    tensors["conv1.conv2d.weight" if "conv1.conv2d.weight" in tensors else next(iter(tensors))][0] = float("nan")
    save_file(tensors, str(target), metadata=metadata)
    return target


class _Evil:
    def __reduce__(self) -> tuple:
        return (os.system, ("echo pwned",))


def build_assets(root: Path) -> Assets:
    """Write every file of :class:`Assets` under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    photo, photo_b = make_photo(root / "photo.png", seed=1), make_photo(root / "photo_b.png", seed=2)
    style = make_photo(root / "style.png", size=(40, 40), seed=3)
    source = random_weights(seed=1)
    pth, mat = write_torchvision_pth(source, root / "tiny.pth"), write_matconvnet_mat(source, root / "tiny.mat")
    data = root / "data"
    data.mkdir()
    for i in range(4):
        make_photo(data / f"p{i}.jpg", size=(40, 36), seed=10 + i)
    model, run = _trained_model(root, style, data, pth)

    (root / "text.jpg").write_text("this is not an image")
    jpeg = root / "full.jpg"
    Image.open(photo).convert("RGB").save(jpeg, quality=90)
    (root / "truncated.jpg").write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])
    jpeg.unlink()
    (root / "empty.png").write_bytes(b"")
    png_declaring(root / "bomb.png", 100_000, 100_000)
    Image.new("RGB", (1000, 1), (90, 20, 200)).save(root / "thin.png")
    Image.new("RGB", (100_000, 1), (90, 20, 200)).save(root / "long.png")
    Image.open(photo).resize((64, 32)).save(root / "wide.png")
    os.mkfifo(root / "fifo.jpg")
    (root / "folder").mkdir()
    for sub in ("x", "y"):
        (root / sub).mkdir()
        make_photo(root / sub / "a.png", seed=20)
    unreadable = root / "unreadable"
    unreadable.mkdir()
    for i in range(4):
        (unreadable / f"u{i}.jpg").write_text("garbage")

    nan_source = random_weights(seed=1)
    nan_source.convs[0][0][0, 0, 0, 0] = np.nan
    nan_pth = write_torchvision_pth(nan_source, root / "nan.pth")
    integer = torch.load(pth, weights_only=True)  # the same file with one tensor turned into integers
    integer["features.0.weight"] = (integer["features.0.weight"] * 100).round().to(torch.int64)
    torch.save(integer, root / "int.pth")
    nan_mat = write_matconvnet_mat(nan_source, root / "nan.mat")
    nan_model = _nan_copy_of_model(model, root / "nan_model.safetensors")
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=True)
    next(iter(checkpoint["model"].values())).view(-1)[0] = float("nan")
    torch.save(checkpoint, root / "nan_checkpoint.pt")
    from safetensors import safe_open

    with safe_open(str(model), framework="pt") as handle:
        header = handle.metadata()
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    tensors["conv9.weight"] = tensors.pop(sorted(tensors)[0])
    save_file(tensors, str(root / "wrong_key.safetensors"), metadata=header)
    bad_json = root / "bad_json.safetensors"
    bad_json.write_bytes(model.read_bytes())
    bad_json.with_suffix(".json").write_text("{ not json")

    torch.save({"x": _Evil()}, root / "evil.pth")
    (root / "text.pth").write_text("hello, I am text")
    pth_bytes = pth.read_bytes()
    (root / "truncated.pth").write_bytes(pth_bytes[: len(pth_bytes) // 2])
    mat_bytes = mat.read_bytes()
    (root / "truncated.mat").write_bytes(mat_bytes[: len(mat_bytes) // 2])
    model_bytes = model.read_bytes()
    (root / "truncated.safetensors").write_bytes(model_bytes[: len(model_bytes) // 2])
    torch.save({"weights": torch.zeros(2)}, root / "plain_dict.pt")
    state = torch.load(pth, weights_only=True)
    state["features.1.running_mean"] = torch.zeros(4)
    torch.save(state, root / "batchnorm.pth")
    (root / "a_file").write_text("a file, not a folder")
    (root / "unknown_key.toml").write_text('colour = "red"\n')
    (root / "bad_value.toml").write_text('max_queued = "many"\n[smtp]\nhost = "mail.example.org"\n')

    from tests.video.clips import write_clip

    clip = write_clip(root / "clip.mp4")
    (root / "text.mp4").write_text("this is not a video")
    (root / "text.t7").write_text("this is not a Torch7 file")
    (root / "truncated.mp4").write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    from styleforge.models.files import save_style_model
    from styleforge.vgg.network import load_vgg19
    from tests.synthetic import random_adain_network

    adain_model = save_style_model(random_adain_network(load_vgg19(str(pth))), root / "adain.safetensors", {})

    return Assets(
        root=root, photo=photo, photo_b=photo_b, style=style, pth=pth, mat=mat, model=model, run=run, data=data,
        text_jpg=root / "text.jpg", truncated_jpg=root / "truncated.jpg", empty_png=root / "empty.png",
        bomb_png=root / "bomb.png", thin_png=root / "thin.png", long_png=root / "long.png", wide_png=root / "wide.png",
        fifo_jpg=root / "fifo.jpg", folder=root / "folder", same_a=root / "x" / "a.png", same_b=root / "y" / "a.png",
        unreadable_data=unreadable, nan_pth=nan_pth, nan_mat=nan_mat, nan_model=nan_model,
        nan_checkpoint=root / "nan_checkpoint.pt", wrong_key_model=root / "wrong_key.safetensors",
        bad_json_model=bad_json, evil_pth=root / "evil.pth", text_pth=root / "text.pth", int_pth=root / "int.pth",
        truncated_pth=root / "truncated.pth", truncated_mat=root / "truncated.mat",
        truncated_safetensors=root / "truncated.safetensors", plain_dict_pt=root / "plain_dict.pt",
        batchnorm_pth=root / "batchnorm.pth", a_file=root / "a_file",
        service_unknown_key=root / "unknown_key.toml", service_bad_value=root / "bad_value.toml",
        clip=clip, text_mp4=root / "text.mp4", truncated_mp4=root / "truncated.mp4",
        text_t7=root / "text.t7", adain_model=adain_model,
    )
