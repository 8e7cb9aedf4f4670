"""The one style-model loading interface (styleforge.models.loading): which reader claims
each file, what inspect_model reads from a header alone, that load_network gives back
the network that was saved, and the option table that refuses what does not apply."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import styleforge as sf
from styleforge.config import TransferOptions
from styleforge.errors import StyleforgeError
from styleforge.models.checkpoint import write_checkpoint
from styleforge.models.files import save_style_model
from styleforge.models.loading import (
    ADAIN,
    READERS,
    STYLE_VECTOR,
    TRANSFORM_NET,
    inspect_model,
    load_network,
    reader_for,
)
from styleforge.models.option_rules import RULES, check_transfer_options
from styleforge.nets.transform_net import TransformNet
from tests.conftest import make_photo
from tests.models.reference import export_zoo_onnx, random_reference
from tests.synthetic import random_adain_network, random_style_network


def _checkpoint(net: TransformNet, path: Path, names: list[str]) -> Path:
    """A checkpoint with the fields training writes (training/loop.py and johnson.py)."""
    payload = {"model": net.state_dict(), "options": {"norm": net.norm}, "state": {"step": 7},
               "style_name": names[0] if len(names) == 1 else "multistyle", "style_names": names, "convention": net.convention()}
    return write_checkpoint(payload, path)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, weight_files: dict[str, Path]) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("loading")
    torch.manual_seed(0)
    single = random_style_network(seed=1)
    multi = TransformNet(styles=3)
    vector = TransformNet(style_vector=6)
    adain = random_adain_network(sf.load_vgg19(str(weight_files["pth"])), seed=2)
    found = {
        "single": save_style_model(single, folder / "wave.safetensors", {"style_image": "wave.jpg"}),
        "multi": save_style_model(multi, folder / "three.safetensors",
                                  {"styles": [{"name": "wave"}, {"name": "scream"}, {"name": "muse"}]}),
        "vector": save_style_model(vector, folder / "any.safetensors", {}),
        "adain": save_style_model(adain, folder / "adain.safetensors", {"options": {}}),
        "checkpoint": _checkpoint(multi, folder / "checkpoint.pt", ["wave.jpg", "scream.jpg", "muse.jpg"]),
    }
    zoo = folder / "zoo.onnx"
    export_zoo_onnx(random_reference(seed=3), zoo)
    found["zoo"] = zoo
    return found


@pytest.fixture(scope="module")
def exports(files: dict[str, Path]) -> dict[str, Path]:
    from styleforge.deploy.export import export_style_model

    return {name: export_style_model(files[name], files[name].with_suffix(".onnx")).path for name in ("single", "multi", "adain")}


def test_each_file_is_claimed_by_one_reader_in_order(files: dict[str, Path], tmp_path: Path) -> None:
    assert [reader.name for reader in READERS] == ["checkpoint", "onnx-zoo", "onnx-export", "safetensors"]
    assert reader_for(files["checkpoint"]).name == "checkpoint"
    assert reader_for(files["zoo"]).name == "onnx-zoo"
    assert reader_for(files["single"]).name == "safetensors"
    assert reader_for(tmp_path / "anything.bin").name == "safetensors"  # the fallback says what is wrong


@pytest.mark.parametrize("name, reader, kind, styles, names", [
    ("single", "safetensors", TRANSFORM_NET, 1, ["style0"]),
    ("multi", "safetensors", TRANSFORM_NET, 3, ["wave", "scream", "muse"]),
    ("vector", "safetensors", STYLE_VECTOR, 0, []),
    ("adain", "safetensors", ADAIN, 0, []),
    ("checkpoint", "checkpoint", TRANSFORM_NET, 3, ["wave", "scream", "muse"]),
    ("zoo", "onnx-zoo", TRANSFORM_NET, 1, ["zoo"]),
])
def test_inspect_reads_kind_and_styles(files: dict[str, Path], name: str, reader: str, kind: str, styles: int, names: list[str]) -> None:
    info = inspect_model(files[name])
    assert (info.reader, info.kind, info.styles, info.style_names) == (reader, kind, styles, names)
    assert info.takes_any_style == (kind in (ADAIN, STYLE_VECTOR))
    assert info.runtime == ("onnx" if name == "zoo" else "pytorch")


def test_inspect_reads_exported_onnx_metadata(exports: dict[str, Path]) -> None:
    single, multi, adain = (inspect_model(exports[name]) for name in ("single", "multi", "adain"))
    assert (single.reader, single.kind, single.styles, single.runtime) == ("onnx-export", TRANSFORM_NET, 1, "onnx")
    assert (multi.styles, multi.style_names) == (3, ["wave", "scream", "muse"])
    assert adain.kind == ADAIN and adain.takes_any_style


def test_inspect_reads_the_header_only(files: dict[str, Path], tmp_path: Path) -> None:
    """The safetensors header and sidecar are enough: the tensors can be any size."""
    import safetensors.torch

    header = {"format": "styleforge-transformnet", "norm": "instance", "styles": "2", "upsample": "deconv"}
    file = tmp_path / "header.safetensors"
    safetensors.torch.save_file({"unused": torch.zeros(1)}, str(file), metadata=header)
    info = inspect_model(file)
    assert (info.kind, info.styles, info.header["upsample"]) == (TRANSFORM_NET, 2, "deconv")
    with pytest.raises(StyleforgeError, match="missing"):
        load_network(file)


@pytest.mark.parametrize("name", ["single", "multi", "checkpoint", "vector"])
def test_load_network_gives_back_the_saved_parameters(files: dict[str, Path], name: str) -> None:
    net, metadata = load_network(files[name])
    source = {"checkpoint": "multi"}.get(name, name)
    saved, _ = load_network(files[source])
    assert isinstance(net, TransformNet)
    for (key, a), (_, b) in zip(net.state_dict().items(), saved.state_dict().items(), strict=True):
        assert torch.equal(a, b), key
    if name == "checkpoint":
        assert metadata["steps"] == 7 and metadata["source"] == "checkpoint"


def test_load_network_runs_onnx_files_as_the_pytorch_network(files: dict[str, Path], exports: dict[str, Path]) -> None:
    x = torch.rand(1, 3, 40, 36) * 255
    pytorch, _ = load_network(files["single"])
    onnx_net, metadata = load_network(exports["single"])
    assert metadata["styleforge_format"] == "styleforge-onnx-transformnet"
    with torch.inference_mode():
        assert (onnx_net(x) - pytorch.eval()(x)).abs().max() < 0.5  # 0-255 units


def test_unreadable_files_fail_in_one_line(tmp_path: Path) -> None:
    text = tmp_path / "notes.safetensors"
    text.write_text("not a model")
    with pytest.raises(StyleforgeError, match="cannot read model"):
        inspect_model(text)
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(2)}, plain)
    with pytest.raises(StyleforgeError, match="not a styleforge training checkpoint"):
        inspect_model(plain)


# One case per rule of the option table: the options, the file, and the words of the refusal.
RULE_CASES = [
    ({"compile": True}, "zoo", "--compile applies to PyTorch models"),
    ({"runtime": "pytorch"}, "zoo", "--runtime pytorch runs PyTorch models"),
    ({"precision": "int8"}, "zoo", "--precision int8 quantises a PyTorch model"),
    ({"precision": "int8", "styles": ("a.jpg",)}, "adain", "quantises networks with their styles built in"),
    ({"runtime": "onnxruntime"}, "single", "--runtime onnxruntime runs exported .onnx files"),
    ({"power_difference": True}, "zoo", "--power-difference applies to PyTorch models"),
    ({"alpha": 0.5}, "single", "--alpha is AdaIN's"),
    ({"strength_mode": "norm"}, "zoo", "which an ONNX file fixes"),
    ({"strength_mode": "norm", "styles": ("a.jpg",)}, "adain", "an AdaIN model has --alpha"),
    ({"strength_mode": "norm"}, "batch", "needs an instance-norm network"),
    ({}, "adain", "is an AdaIN model, which takes any painting"),
    ({}, "vector", "takes any painting as the style"),
    ({"styles": ("a.jpg",)}, "single", "has its style built in"),
    ({"style_weights": "0"}, "zoo", "--style-weights needs a multi-style model"),
]


def test_every_rule_has_a_case() -> None:
    assert len(RULE_CASES) == len(RULES)


@pytest.mark.parametrize("options, name, words", RULE_CASES)
def test_the_option_table_refuses_what_does_not_apply(files: dict[str, Path], tmp_path: Path, options: dict, name: str,
                                                      words: str) -> None:
    if name == "batch":
        files = {**files, "batch": save_style_model(TransformNet(norm="batch"), tmp_path / "batch.safetensors", {})}
    if "styles" in options:
        options = {**options, "styles": (str(make_photo(tmp_path / "a.jpg")),)}
    with pytest.raises(StyleforgeError, match=words.replace("-", r"\-")):
        check_transfer_options(inspect_model(files[name]), TransferOptions(**options))
    with pytest.raises(StyleforgeError, match=words.replace("-", r"\-")):  # the same refusal through the API
        sf.load_style_model(files[name], options=TransferOptions(device="cpu", **options))


@pytest.mark.parametrize("options, name", [
    ({"strength_mode": "norm", "strength": 0.5}, "single"),
    ({"style_weights": "scream"}, "multi"),
    ({"styles": ("a.jpg",), "alpha": 0.5}, "adain"),
    ({"styles": ("a.jpg",), "strength_mode": "norm"}, "vector"),
    ({"compile": True}, "single"),
])
def test_the_option_table_accepts_what_applies(files: dict[str, Path], options: dict, name: str) -> None:
    check_transfer_options(inspect_model(files[name]), TransferOptions(**options))


def test_models_import_installs_a_training_checkpoint(files: dict[str, Path]) -> None:
    """A ``.pt`` written by ``train`` is installed as the network of its step (not read as
    a pytorch/examples file, which shares the suffix)."""
    installed = sf.import_model(files["checkpoint"], "three")
    net, metadata = load_network(installed)
    original, _ = load_network(files["checkpoint"])
    assert metadata["layout"] == "styleforge-checkpoint" and inspect_model(installed).styles == 3
    for (key, a), (_, b) in zip(net.state_dict().items(), original.state_dict().items(), strict=True):
        assert torch.equal(a, b), key


def test_models_import_refuses_an_adain_checkpoint(files: dict[str, Path], tmp_path: Path) -> None:
    adain, _ = load_network(files["adain"])
    payload = {"kind": "adain", "header": json.loads(json.dumps(inspect_model(files["adain"]).header)),
               "model": adain.state_dict(), "options": {}, "state": {"step": 1}}
    path = write_checkpoint(payload, tmp_path / "adain.pt")
    assert inspect_model(path).kind == ADAIN
    with pytest.raises(StyleforgeError, match="use it directly with 'transfer --model"):
        sf.import_model(path, "adain-model")


def test_an_unreadable_file_still_gets_the_refusals_that_need_no_header(tmp_path: Path) -> None:
    from styleforge.models.option_rules import checked_model_info

    garbage = tmp_path / "m.onnx"
    garbage.write_bytes(b"not an ONNX graph")
    with pytest.raises(StyleforgeError, match="--compile applies to PyTorch models"):
        checked_model_info(garbage, TransferOptions(compile=True))
    with pytest.raises(StyleforgeError, match="cannot read ONNX model"):  # a rule that needs the header: the reader's error
        checked_model_info(garbage, TransferOptions(styles=(str(make_photo(tmp_path / "a.jpg")),)))


def test_load_network_takes_the_info_inspect_model_gave(files: dict[str, Path], exports: dict[str, Path]) -> None:
    for file in (files["multi"], files["checkpoint"], exports["adain"]):
        info = inspect_model(file)
        by_info, metadata = load_network(info)
        by_path, expected = load_network(file)
        assert type(by_info) is type(by_path) and metadata == expected
