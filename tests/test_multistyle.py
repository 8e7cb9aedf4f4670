"""Several styles in one network (conditional instance norm, Dumoulin et al. 2017): one
style of K equals the single-style network with that style's parameters, blends
interpolate the parameters, a 2-style training run lowers each style's loss, and the CLI
trains, blends and refuses bad selections."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import styleforge as sf
from styleforge.config import TrainOptions, TransferOptions
from styleforge.errors import StyleforgeError
from styleforge.models.files import save_style_model
from styleforge.nets.transform_net import InstanceNorm, TransformNet
from styleforge.training.johnson import Trainer
from styleforge.transfer.model import load_style_model
from tests.conftest import assert_user_error, make_photo, run_cli

SMALL = dict(image_size=48, batch_size=4, workers=0, device="cpu", log_every=1, checkpoint_every=0, precision="fp32")


def random_multistyle(styles: int, seed: int = 0) -> TransformNet:
    torch.manual_seed(seed)
    net = TransformNet(styles=styles)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, InstanceNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    return net.eval()


def single_style_copy(net: TransformNet, rows: torch.Tensor) -> TransformNet:
    """The plain network whose instance norms hold ``rows @ (weight, bias)`` of ``net``'s."""
    plain = TransformNet().eval()
    state = {}
    for key, value in net.state_dict().items():
        state[key] = rows @ value if value.ndim == 2 and ".norm" in f".{key}" else value
    plain.load_state_dict(state)
    return plain


def test_one_style_of_k_is_the_plain_network_with_its_parameters() -> None:
    net = random_multistyle(3)
    x = torch.rand(2, 3, 40, 52) * 255
    with torch.no_grad():
        for k in range(3):
            net.select_styles(k)
            assert torch.equal(net(x), single_style_copy(net, torch.eye(3)[k])(x))


def test_blends_interpolate_the_norm_parameters() -> None:
    net = random_multistyle(2, seed=1)
    x = torch.rand(1, 3, 36, 44) * 255
    with torch.no_grad():
        net.select_styles([1.0, 0.0])
        first = net(x)
        net.select_styles(0)
        assert torch.equal(first, net(x))
        net.select_styles([3.0, 7.0])  # normalised to 0.3, 0.7
        torch.testing.assert_close(net(x), single_style_copy(net, torch.tensor([0.3, 0.7]))(x), atol=1e-3, rtol=0)


@pytest.mark.parametrize(("weights", "fragment"), [(2, "out of range"), ([1.0, -1.0], ">= 0"), ([0.0, 0.0], "positive sum"),
                                                   ([1.0, 2.0, 3.0], "must be 2 numbers")])
def test_bad_selections_are_refused(weights: object, fragment: str) -> None:
    with pytest.raises(StyleforgeError, match=fragment):
        random_multistyle(2).select_styles(weights)


def test_multistyle_model_saves_and_loads_with_its_styles(tmp_path: Path) -> None:
    net = random_multistyle(2, seed=2)
    path = save_style_model(net, tmp_path / "m.safetensors", {"styles": [{"name": "wave"}, {"name": "scream"}]})
    photo = Image.open(make_photo(tmp_path / "p.png", size=(40, 32))).convert("RGB")

    def stylise(weights: str | None) -> np.ndarray:
        model = load_style_model(path, options=TransferOptions(device="cpu", precision="fp32", style_weights=weights))
        return np.asarray(model.stylize(photo))

    assert json.loads(path.with_suffix(".json").read_text())["network"]["styles"] == "2"
    assert np.array_equal(stylise("scream"), stylise("1")) and np.array_equal(stylise(None), stylise("wave:2"))
    assert not np.array_equal(stylise("0"), stylise("1"))
    blend = stylise("wave:0.5,1:0.5").astype(float)
    assert np.abs(blend - stylise("0")).mean() > 1 and np.abs(blend - stylise("1")).mean() > 1
    with pytest.raises(StyleforgeError, match="no style 'udnie' in this model; its styles are 0:wave, 1:scream"):
        stylise("udnie")


def test_two_style_training_lowers_each_styles_loss(tmp_path: Path, weight_files: dict[str, Path]) -> None:
    """Steps alternate between the styles (step s trains style (s - 1) mod 2); over the run
    each style's own loss falls (its first five steps against its last five)."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(8):
        make_photo(photos / f"p{i}.jpg", size=(56, 52), seed=i)
    styles = [Image.open(make_photo(tmp_path / f"s{i}.png", size=(48, 48), seed=50 + i)).convert("RGB") for i in range(2)]
    opts = TrainOptions(**{**SMALL, "lr": 3e-3, "max_steps": 60, "epochs": 1000})
    trainer = Trainer(styles, ["a.png", "b.png"], photos, tmp_path / "run", opts, vgg=sf.load_vgg19(str(weight_files["pth"])),
                      progress=False)
    path = trainer.run()
    for k in range(2):
        mine = [row["total"] for row in trainer.state.history if (row["step"] - 1) % 2 == k]
        assert np.mean(mine[-5:]) < 0.6 * np.mean(mine[:5]), (k, mine)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert path.name == "multistyle.safetensors" and [s["name"] for s in meta["styles"]] == ["a", "b"]
    assert all(s["thumbnail_png_base64"] for s in meta["styles"]) and meta["network"]["styles"] == "2"


def test_cli_trains_two_styles_and_blends_them(tmp_path: Path, weight_files: dict[str, Path]) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(4):
        make_photo(photos / f"p{i}.jpg", size=(40, 36), seed=i)
    wave, scream = make_photo(tmp_path / "wave.png", seed=60), make_photo(tmp_path / "scream.png", seed=61)
    result = run_cli("train", "--style", str(wave), "--style", str(scream), "--data", str(photos), "--out", str(tmp_path / "run"),
                     "--weights", str(weight_files["pth"]), "--image-size", "32", "--batch-size", "2", "--max-steps", "4",
                     "--workers", "0", "--device", "cpu", "--quiet")
    assert result.returncode == 0, result.stderr
    model = tmp_path / "run" / "multistyle.safetensors"
    assert result.stdout.strip() == str(model)
    photo = make_photo(tmp_path / "photo.png", size=(40, 30), seed=9)
    outputs = {}
    for spec in ("scream", "1", "wave:0.5,scream:0.5"):
        out = tmp_path / f"out-{spec.replace(':', '_').replace(',', '_')}.png"
        run = run_cli("transfer", "--model", str(model), str(photo), "-o", str(out), "--style-weights", spec, "--precision", "fp32",
                      "--device", "cpu", "--quiet")
        assert run.returncode == 0, run.stderr
        outputs[spec] = np.asarray(Image.open(out))
    assert np.array_equal(outputs["scream"], outputs["1"])
    checkpoint = run_cli("transfer", "--model", str(tmp_path / "run" / "checkpoint.pt"), str(photo), "-o", str(tmp_path / "c.png"),
                         "--style-weights", "scream", "--precision", "fp32", "--device", "cpu", "--quiet")
    assert checkpoint.returncode == 0, checkpoint.stderr
    base = ["transfer", "--model", str(model), str(photo), "-o", str(tmp_path / "bad.png"), "--device", "cpu"]
    assert_user_error(run_cli(*base, "--style-weights", "5"), "style 5 is out of range: this model has 2 style(s), 0-1")
    assert_user_error(run_cli(*base, "--style-weights", "wave:0,scream:0"), "must be numbers >= 0 with a positive sum")
    assert_user_error(run_cli(*base, "--style-weights", "monet"), "no style 'monet' in this model")
    assert_user_error(run_cli("train", "--style", str(wave), "--style", str(wave), "--data", str(photos), "--out",
                              str(tmp_path / "r2"), "--weights", str(weight_files["pth"])), "two styles have the same file name")


def test_extend_trains_only_the_new_style_and_keeps_the_old_ones_bit_exact(tmp_path: Path, weight_files: dict[str, Path]) -> None:
    base = save_style_model(random_multistyle(2, seed=4), tmp_path / "base.safetensors",
                            {"styles": [{"name": "wave"}, {"name": "scream"}]})
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(4):
        make_photo(photos / f"p{i}.jpg", size=(40, 36), seed=i)
    udnie = make_photo(tmp_path / "udnie.png", seed=70)
    result = run_cli("train", "--extend", str(base), "--style", str(udnie), "--data", str(photos), "--out", str(tmp_path / "run"),
                     "--weights", str(weight_files["pth"]), "--image-size", "32", "--batch-size", "2", "--max-steps", "3",
                     "--lr", "0.05", "--workers", "0", "--device", "cpu", "--quiet")
    assert result.returncode == 0, result.stderr
    extended = Path(result.stdout.strip())
    meta = json.loads(extended.with_suffix(".json").read_text())
    assert [s["name"] for s in meta["styles"]] == ["wave", "scream", "udnie"] and meta["network"]["styles"] == "3"
    old = load_style_model(base, options=TransferOptions(device="cpu", precision="fp32")).net
    new = load_style_model(extended, options=TransferOptions(device="cpu", precision="fp32")).net
    for key, value in old.state_dict().items():  # every old parameter and row is untouched, bit for bit
        assert torch.equal(new.state_dict()[key][: value.shape[0]] if value.ndim == 2 else new.state_dict()[key], value), key
    x = torch.rand(1, 3, 40, 36) * 255
    with torch.no_grad():
        for k in range(2):
            old.select_styles(k)
            new.select_styles(k)
            assert torch.equal(old(x), new(x))
        new.select_styles(2)
        third = new(x)
        new.select_styles(0)
        assert not torch.equal(third, new(x))
    rows = new.norm1.weight.detach()
    assert not torch.equal(rows[2], rows[:2].mean(0))  # the new row did train from its initial mean
    assert_user_error(run_cli("train", "--extend", str(tmp_path / "missing.safetensors"), "--style", str(udnie), "--data",
                              str(photos), "--out", str(tmp_path / "r3"), "--weights", str(weight_files["pth"])), "no such file")


def test_export_holds_the_chosen_style(tmp_path: Path) -> None:
    """``export --style-weights`` writes the chosen style or blend into the ONNX file, which
    then gives the PyTorch model's output for that selection."""
    from styleforge.deploy.export import export_style_model

    path = save_style_model(random_multistyle(2, seed=6), tmp_path / "duo.safetensors", {"styles": [{"name": "a"}, {"name": "b"}]})
    report = export_style_model(path, tmp_path / "b.onnx", style_weights="b")
    assert report.max_difference <= 0.05
    photo = Image.open(make_photo(tmp_path / "p.png", size=(48, 40))).convert("RGB")
    fp32 = dict(device="cpu", precision="fp32")
    onnx_out = np.asarray(load_style_model(tmp_path / "b.onnx", options=TransferOptions(**fp32)).stylize(photo), dtype=np.int16)
    for spec, close in (("b", True), ("a", False)):
        torch_out = np.asarray(load_style_model(path, options=TransferOptions(**fp32, style_weights=spec)).stylize(photo), dtype=np.int16)
        assert (np.abs(onnx_out - torch_out).max() <= 1) == close, spec


def test_export_without_a_choice_keeps_every_style_as_an_input(tmp_path: Path) -> None:
    """Exported without --style-weights, the ONNX file takes ``style_weights`` (K,) as its
    second input: every style and blend gives the PyTorch model's output, tiles included,
    and INT8 quantisation calibrates each style."""
    import onnx

    from styleforge.config import QuantizeOptions
    from styleforge.deploy.export import export_style_model
    from styleforge.deploy.quantize import quantize_model

    path = save_style_model(random_multistyle(3, seed=8), tmp_path / "trio.safetensors",
                            {"styles": [{"name": "a"}, {"name": "b"}, {"name": "c"}]})
    report = export_style_model(path, tmp_path / "trio.onnx")
    assert any("blend" in check for check, _ in report.checks) and report.max_difference <= 0.05
    graph = onnx.load(str(tmp_path / "trio.onnx"))
    assert [i.name for i in graph.graph.input] == ["image", "style_weights"]
    assert json.loads({p.key: p.value for p in graph.metadata_props}["styles"]) == ["a", "b", "c"]
    photo = Image.open(make_photo(tmp_path / "p.png", size=(56, 44))).convert("RGB")
    big = Image.open(make_photo(tmp_path / "big.png", size=(160, 120), seed=4)).convert("RGB")
    fp32 = dict(device="cpu", precision="fp32")
    for spec in (None, "c", "a:1,b:3,c:0.5"):
        def run(model: Path, image: Image.Image, tile: int | None = None, spec: str | None = spec) -> np.ndarray:
            options = TransferOptions(**fp32, style_weights=spec, tile_overlap=16)
            return np.asarray(load_style_model(model, options=options).stylize(image, tile=tile), dtype=np.int16)

        assert np.abs(run(tmp_path / "trio.onnx", photo) - run(path, photo)).max() <= 1, spec
        assert np.abs(run(tmp_path / "trio.onnx", big, tile=64) - run(path, big, tile=64)).max() <= 1, spec
    calibration = tmp_path / "calibration"
    calibration.mkdir()
    for i in range(3):
        make_photo(calibration / f"c{i}.png", size=(60, 52), seed=20 + i)
    quantize_model(QuantizeOptions(mean=(0.0,), std=(1.0,), crop=(48, 48), original_models_path=str(tmp_path / "trio.onnx"),
                                   save_model_path=str(tmp_path / "int8.onnx"), data_path=str(calibration), batch_size=1,
                                   num_runs=3, output_tensor_names=("stylized",)))
    int8 = np.asarray(load_style_model(tmp_path / "int8.onnx", options=TransferOptions(**fp32, style_weights="b")).stylize(photo), dtype=float)
    float_b = np.asarray(load_style_model(tmp_path / "trio.onnx", options=TransferOptions(**fp32, style_weights="b")).stylize(photo), dtype=float)
    assert 20 < 10 * np.log10(255.0**2 / np.mean((int8 - float_b) ** 2)) < 80


def test_style_weights_on_a_single_style_onnx_file_are_refused(tmp_path: Path) -> None:
    from styleforge.deploy.export import export_style_model

    path = save_style_model(random_multistyle(2, seed=6), tmp_path / "duo.safetensors", {"styles": [{"name": "a"}, {"name": "b"}]})
    export_style_model(path, tmp_path / "b.onnx", style_weights="b")
    with pytest.raises(StyleforgeError, match="holds one style"):
        load_style_model(tmp_path / "b.onnx", options=TransferOptions(device="cpu", style_weights="a"))


@pytest.mark.parametrize("extend", [False, True], ids=["two-styles", "extend"])
def test_resume_continues_exactly_with_several_styles(tmp_path: Path, weight_files: dict[str, Path], extend: bool) -> None:
    """Stopped after 3 steps (mid-rotation) and resumed, a multi-style run (and an --extend
    run) ends where the uninterrupted run does, and a different style set is refused."""
    from styleforge.training.johnson import train

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(8):
        make_photo(photos / f"p{i}.jpg", size=(48, 44), seed=i)
    styles = [make_photo(tmp_path / f"{name}.png", size=(40, 40), seed=80 + i) for i, name in enumerate(("wave", "scream"))]
    common = dict(weights=str(weight_files["pth"]), epochs=3, progress=False, **SMALL)
    if extend:
        common["extend"] = str(save_style_model(random_multistyle(2, seed=7), tmp_path / "base.safetensors", {}))
    straight = train(styles, photos, tmp_path / "straight", max_steps=6, **common)
    train(styles, photos, tmp_path / "resumed", max_steps=3, **common)
    resumed = train(styles, photos, tmp_path / "resumed", max_steps=6, resume=True, **common)
    a, b = (load_style_model(p, options=TransferOptions(device="cpu")).net.state_dict() for p in (straight, resumed))
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-6)
    with pytest.raises(StyleforgeError, match="another style image"):
        train(styles[::-1], photos, tmp_path / "resumed", max_steps=7, resume=True, **common)
