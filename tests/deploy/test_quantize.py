"""styleforge quantize: the course's INI keys on ONNX Runtime's quantiser, what each key
does to the graph, fidelity of the quantised models, and one-line errors for bad configs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from PIL import Image

from styleforge.config import QuantizeOptions
from styleforge.deploy.export import export_classifier
from styleforge.deploy.quantize import quantize_model
from styleforge.deploy.quantize_config import read_quantize_config
from styleforge.transfer.model import load_style_model
from tests.conftest import assert_user_error, make_photo, run_cli

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("calibration")
    for i in range(6):
        make_photo(folder / f"c{i}.png", size=(80 + 7 * i, 64), seed=30 + i)
    return folder


def _opts(exported: Path, out: Path, photos: Path, **changes: object) -> QuantizeOptions:
    base = dict(mean=(0.0,), std=(1.0,), crop=(48, 48), original_models_path=str(exported), save_model_path=str(out),
                data_path=str(photos), batch_size=2, num_runs=3, output_tensor_names=("stylized",))
    return QuantizeOptions(**{**base, **changes})  # type: ignore[arg-type]


def _psnr(a: Image.Image, b: Image.Image) -> float:
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(10 * np.log10(255**2 / max(((x - y) ** 2).mean(), 1e-12)))


def _conv_weight_scales(path: Path) -> list[np.ndarray]:
    """The scales of the DequantizeLinear nodes feeding Conv weights."""
    model = onnx.load(str(path))
    inits = {t.name: t for t in model.graph.initializer}
    weights = {n.input[1] for n in model.graph.node if n.op_type == "Conv"}
    return [numpy_helper.to_array(inits[n.input[1]]) for n in model.graph.node
            if n.op_type == "DequantizeLinear" and n.output[0] in weights]


def _first_activation_scale(path: Path) -> float:
    """The scale of the first quantised activation: the first convolution's (padded, /255) input."""
    model = onnx.load(str(path))
    inits = {t.name: t for t in model.graph.initializer}
    node = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in inits)
    return float(numpy_helper.to_array(inits[node.input[1]]))


@pytest.mark.parametrize("per_channel", [False, True])
def test_int8_style_model_is_quantised_per_channel_when_asked_and_stays_close(exported: Path, photos: Path, tmp_path: Path,
                                                                               per_channel: bool) -> None:
    out = tmp_path / "int8.onnx"
    report = quantize_model(_opts(exported, out, photos, channel_quantization=per_channel))
    assert report.calibration_images == 6 and report.quantized_nodes > 16
    scales = _conv_weight_scales(out)
    assert len(scales) == 14  # every Conv of the network but the first and the last (float_first_last)
    assert all((s.ndim == 1 and s.size > 1) if per_channel else s.ndim == 0 for s in scales)
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["styleforge_format"] == "styleforge-onnx-transformnet" and json.loads(meta["quantization"])["quantization_type"] == "int8"
    photo = Image.open(sorted(photos.iterdir())[0]).convert("RGB")
    assert _psnr(load_style_model(out).stylize(photo), load_style_model(exported).stylize(photo)) > 25


def test_float_first_last_keeps_the_edge_convolutions_float(exported: Path, photos: Path, tmp_path: Path) -> None:
    counts = {}
    for flag in (True, False):
        out = tmp_path / f"edges_{flag}.onnx"
        quantize_model(_opts(exported, out, photos, float_first_last=flag))
        model = onnx.load(str(out))
        convs = [n for n in model.graph.node if n.op_type == "Conv"]
        producers = {o: n.op_type for n in model.graph.node for o in n.output}
        counts[flag] = len(_conv_weight_scales(out))
        for edge in (convs[0], convs[-1]):
            assert (producers.get(edge.input[0]) == "DequantizeLinear") is not flag  # its input quantised or not
            assert (producers.get(edge.input[1]) == "DequantizeLinear") is not flag  # and its weight
        assert all(producers.get(c.input[1]) == "DequantizeLinear" for c in convs[1:-1])
    assert counts == {True: 14, False: 16}


def _activation_scales(path: Path) -> dict[str, float]:
    """Activation tensor -> its quantisation scale (per-tensor QuantizeLinear on non-initialisers)."""
    model = onnx.load(str(path))
    inits = {t.name: t for t in model.graph.initializer}
    return {n.input[0]: float(numpy_helper.to_array(inits[n.input[1]])) for n in model.graph.node
            if n.op_type == "QuantizeLinear" and n.input[0] not in inits}


def test_range_margin_widens_every_calibrated_range(exported: Path, photos: Path, tmp_path: Path) -> None:
    plain, wide = tmp_path / "m1.onnx", tmp_path / "m2.onnx"
    quantize_model(_opts(exported, plain, photos, range_margin=1.0))
    quantize_model(_opts(exported, wide, photos, range_margin=2.0))
    a, b = _activation_scales(plain), _activation_scales(wide)
    assert a.keys() == b.keys() and len(a) >= 14
    for name in a:  # uint8 scale = (max - min) / 255 with min <= 0 <= max: doubling both doubles it
        assert b[name] == pytest.approx(2 * a[name], rel=1e-3), name
    meta = {p.key: p.value for p in onnx.load(str(wide)).metadata_props}
    assert json.loads(meta["quantization"])["range_margin"] == 2.0


def test_int16_is_near_lossless(exported: Path, photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "int16.onnx"
    quantize_model(_opts(exported, out, photos, quantization_type="int16", channel_quantization=True))
    photo = Image.open(sorted(photos.iterdir())[1]).convert("RGB")
    assert _psnr(load_style_model(out).stylize(photo), load_style_model(exported).stylize(photo)) > 45


def test_threshold_search_clips_the_outlier_that_naive_keeps(exported: Path, tmp_path: Path) -> None:
    common = dict(calibration="tests.deploy.calibration_outliers:batches", num_runs=9, batch_size=1, float_first_last=False)
    quantize_model(_opts(exported, tmp_path / "naive.onnx", tmp_path, **common))
    quantize_model(_opts(exported, tmp_path / "thr.onnx", tmp_path, activation_quantization_alg="threshold_search", **common))
    naive, threshold = _first_activation_scale(tmp_path / "naive.onnx"), _first_activation_scale(tmp_path / "thr.onnx")
    assert naive > 1e5 / 255 / 255 * 0.9  # min/max kept the 1e5 pixel (the graph divides by 255 first)
    assert threshold < naive / 100  # the percentile dropped it


def test_classifier_int8_agrees_with_fp32(classifier_weights: Path, photos: Path, tmp_path: Path) -> None:
    import styleforge as sf

    fp32 = export_classifier(str(classifier_weights), tmp_path / "vgg19.onnx").path
    out = tmp_path / "vgg19_int8.onnx"
    mean, std = (0.485 * 255, 0.456 * 255, 0.406 * 255), (0.229 * 255, 0.224 * 255, 0.225 * 255)
    quantize_model(QuantizeOptions(mean=mean, std=std, crop=(224, 224), original_models_path=str(fp32), save_model_path=str(out),
                                   data_path=str(photos), num_runs=6, output_tensor_names=("logits", "probabilities"),
                                   channel_quantization=True))
    images = [Image.open(p).convert("RGB") for p in sorted(photos.iterdir())]
    a, b = sf.load_vgg19(str(fp32)), sf.load_vgg19(str(out))
    pa, pb = a.probabilities(a.preprocess(images)), b.probabilities(b.preprocess(images))
    assert np.abs(pa - pb).max() < 0.05
    # Tiny random weights give nearly flat probabilities; where fp32 has a clear winner,
    # INT8 picks the same class (the full-size agreement is in docs/quantize.md).
    ranked = np.sort(pa, axis=1)
    clear = ranked[:, -1] - ranked[:, -2] > 2 * np.abs(pa - pb).max()
    assert clear.any() and (pa.argmax(1) == pb.argmax(1))[clear].all()


def test_use_convfirst_folds_the_normalisation_into_the_first_convolution(classifier_weights: Path, photos: Path,
                                                                           tmp_path: Path) -> None:
    from onnx import numpy_helper

    import styleforge as sf

    fp32 = export_classifier(str(classifier_weights), tmp_path / "vgg19.onnx").path
    mean, std = (0.485 * 255, 0.456 * 255, 0.406 * 255), (0.229 * 255, 0.224 * 255, 0.225 * 255)
    common = dict(mean=mean, std=std, crop=(224, 224), original_models_path=str(fp32), data_path=str(photos), num_runs=6,
                  output_tensor_names=("logits", "probabilities"), channel_quantization=True, quantization_type="int16",
                  float_first_last=False)  # the course's point: the folded first convolution quantised on raw pixels
    quantize_model(QuantizeOptions(save_model_path=str(tmp_path / "plain.onnx"), **common))  # type: ignore[arg-type]
    quantize_model(QuantizeOptions(save_model_path=str(tmp_path / "folded.onnx"), use_convfirst=True, **common))  # type: ignore[arg-type]
    folded = onnx.load(str(tmp_path / "folded.onnx"))
    meta = {p.key: p.value for p in folded.metadata_props}
    assert meta["input_preprocessing"] == "raw-0-255" and json.loads(meta["quantization"])["use_convfirst"] is True
    original = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(fp32)).graph.initializer}
    inits = {t.name: numpy_helper.to_array(t) for t in folded.graph.initializer}
    first = next(n for n in onnx.load(str(fp32)).graph.node if n.op_type == "Conv")
    folded_w = next(v for k, v in inits.items() if k.startswith(first.input[1]) and v.ndim == 4 and v.dtype == np.int16)
    assert folded_w.shape == original[first.input[1]].shape  # the first convolution, now taking raw pixels
    images = [Image.open(p).convert("RGB") for p in sorted(photos.iterdir())]
    reference = sf.load_vgg19(str(fp32))
    expected = reference.probabilities(reference.preprocess(images))
    for name in ("plain.onnx", "folded.onnx"):
        model = sf.load_vgg19(str(tmp_path / name))
        got = model.probabilities(model.preprocess(images))
        assert np.abs(got - expected).max() < 5e-3, name  # INT16 noise; folding changes only conv1_1's border


def test_sample_configs_parse(tmp_path: Path) -> None:
    vgg = read_quantize_config(CONFIGS / "vgg19_int8.ini")
    assert vgg.mean == (123.68, 116.779, 103.939) and vgg.int_op_list == ("Conv", "FC", "LRN")
    assert vgg.output_tensor_names == ("logits", "probabilities") and vgg.save_model_path.endswith("vgg19_int8.onnx")
    style = read_quantize_config(CONFIGS / "style_int8.ini", {"data_path": str(tmp_path)})
    assert style.activation_quantization_alg == "naive" and style.channel_quantization and style.data_path == str(tmp_path)


BAD = {
    "missing-key": ("[model]\noriginal_models_path = a.onnx\n[data]\ndata_path = d\n", "[model] save_model_path is missing"),
    "unknown-key": ("[config]\ncolour = red\n", "unknown key [config] colour"),
    "unknown-section": ("[extra]\nx = 1\n", "unknown section [extra]"),
    "unknown-value": ("[config]\nquantization_type = int4\n", "quantization_type = 'int4'"),
    "bad-bool": ("[config]\nchannel_quantization = maybe\n", "[config] channel_quantization = 'maybe'"),
    "bad-mean": ("[preprocess]\nmean = a, b\n", "[preprocess] mean = 'a, b'"),
    "mean-count": ("[preprocess]\nmean = 1, 2\n", "mean needs 3 value(s)"),
    "convfirst-style": ("[config]\nuse_convfirst = True\n", "not one convolution (the preprocessing may be inside the graph"),
    "weight-threshold": ("[config]\nweight_quantization_alg = threshold_search\n", "weight_quantization_alg = threshold_search"),
    "mlu": ("[config]\ndevice_mode = mlu\n", "there is no MLU here"),
    "range-margin": ("[config]\nrange_margin = 0.5\n", "range_margin must be in [1, 16]"),
    "empty-calibration": ("", "has 0 image(s); batch_size x num_runs needs 1"),
    "wrong-mean": ("[preprocess]\nmean = 123.68, 116.78, 103.94\n", "do not match what this model takes: use color_mode = rgb, mean = 0"),
    "wrong-input-name": ("[model]\ninput_tensor_names = img_placeholder:0\n", "the model's inputs are image"),
    "not-ini": ("this is not an ini file\n", "cannot read quantisation config"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_exits_2_naming_the_key(case: str, exported: Path, tmp_path: Path) -> None:
    text, fragment = BAD[case]
    empty = tmp_path / "empty"
    empty.mkdir()
    base = (f"[preprocess]\nmean = 0\n[model]\noriginal_models_path = {exported}\nsave_model_path = {tmp_path / 'out.onnx'}\n"
            f"output_tensor_names = stylized\n[data]\ndata_path = {empty}\n")
    if case in ("missing-key", "not-ini"):
        base = ""
    config = tmp_path / "bad.ini"
    config.write_text(_merge(base, text))
    assert_user_error(run_cli("quantize", "--config", str(config)), fragment)
    assert not (tmp_path / "out.onnx").exists()


def _merge(base: str, extra: str) -> str:
    """Combine two INI texts section by section (the extra's keys win)."""
    import configparser

    if not base or "[" not in extra:
        return base + extra
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(base)
    parser.read_string(extra)
    lines = []
    for section in parser.sections():
        lines.append(f"[{section}]")
        lines += [f"{k} = {v}" for k, v in parser.items(section)]
    return "\n".join(lines) + "\n"


def test_cli_quantize_then_transfer(exported: Path, photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "q.onnx"
    done = run_cli("quantize", "--config", str(CONFIGS / "style_int8.ini"), "--model", str(exported), "-o", str(out),
                   "--data", str(photos), "--num-runs", "3", "--debug", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["calibration_images"] == 6 and Path(report["ranges"]).is_file()
    styled = run_cli("transfer", "--model", str(out), str(sorted(photos.iterdir())[0]), "-o", str(tmp_path / "s.png"))
    assert styled.returncode == 0, styled.stderr
