"""Property-based fuzzing of every reader of untrusted files (hypothesis).

Random bytes and mutations of valid files (bytes flipped, cut short, inserted) go
through the image reader, the VGG19 weights readers (.pth, .mat, .safetensors) and the
style-model readers (.safetensors, checkpoint .pt). The property: each either returns a
valid result or raises :class:`StyleforgeError` (a one-line user error); any other
exception is a bug. CI runs a brief pass; ``STYLEFORGE_FUZZ_EXAMPLES=5000`` runs longer.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from styleforge.errors import StyleforgeError
from styleforge.images.io import read_image
from styleforge.transfer.model import load_style_model
from styleforge.vgg.weights.formats import read_weights_file
from tests.synthetic import random_weights, write_matconvnet_mat, write_torchvision_pth

EXAMPLES = int(os.environ.get("STYLEFORGE_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _image_bytes(fmt: str) -> bytes:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, size=(12, 10, 3), dtype=np.uint8)).save(buffer, format=fmt)
    return buffer.getvalue()


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    """``original`` with a few bytes changed, a slice cut out or inserted, or cut short."""
    data = bytearray(original)
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "truncate"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[at : at + draw(st.integers(1, 64))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        else:
            del data[at:]
    return bytes(data)


def _accepts_or_refuses(read: object, path: Path) -> object:
    try:
        return read(path)  # type: ignore[operator]
    except StyleforgeError as exc:
        assert "\n" not in str(exc) and str(exc)
        return None


IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".bmp": "BMP", ".webp": "WEBP"}


@pytest.mark.parametrize("suffix", sorted(IMAGE_FORMATS))
@FUZZ
@given(data=st.data())
def test_image_reader_fuzz(suffix: str, data: st.DataObject, tmp_path: Path) -> None:
    original = _image_bytes(IMAGE_FORMATS[suffix])
    blob = data.draw(st.one_of(mutated(original), st.binary(max_size=256)))
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(blob)
    img = _accepts_or_refuses(read_image, path)
    if img is not None:
        assert img.mode == "RGB" and img.size[0] > 0 and img.size[1] > 0


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Valid files of every reader's format."""
    from styleforge.training.johnson import train
    from tests.conftest import make_photo

    folder = tmp_path_factory.mktemp("fuzz-originals")
    source = random_weights(seed=3)
    pth, mat = write_torchvision_pth(source, folder / "w.pth"), write_matconvnet_mat(source, folder / "w.mat")
    from styleforge.vgg.weights.formats import write_safetensors

    write_safetensors(read_weights_file(pth), folder / "w.safetensors")
    data = folder / "data"
    data.mkdir()
    for i in range(2):
        make_photo(data / f"{i}.png", size=(32, 32), seed=i)
    style = make_photo(folder / "s.png", size=(32, 32), seed=9)
    model = train(style, data, folder / "run", weights=str(pth), image_size=32, batch_size=2, max_steps=1, workers=0,
                  device="cpu", checkpoint_every=0, progress=False, precision="fp32")
    return {
        "w.pth": pth.read_bytes(), "w.mat": mat.read_bytes(), "w.safetensors": (folder / "w.safetensors").read_bytes(),
        "m.safetensors": model.read_bytes(), "checkpoint.pt": (folder / "run" / "checkpoint.pt").read_bytes(),
    }


@pytest.mark.parametrize("name", ["w.pth", "w.mat", "w.safetensors"])
@FUZZ
@given(data=st.data())
def test_weights_readers_fuzz(name: str, data: st.DataObject, originals: dict[str, bytes], tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_bytes(data.draw(mutated(originals[name])))
    bundle = _accepts_or_refuses(read_weights_file, path)
    if bundle is not None:
        assert all(np.isfinite(a).all() for a in bundle.tensors.values())


@pytest.mark.parametrize("name", ["m.safetensors", "checkpoint.pt"])
@FUZZ
@given(data=st.data())
def test_style_model_readers_fuzz(name: str, data: st.DataObject, originals: dict[str, bytes], tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_bytes(data.draw(mutated(originals[name])))
    model = _accepts_or_refuses(lambda p: load_style_model(p, device="cpu"), path)
    if model is not None:
        out = model.stylize(Image.new("RGB", (9, 7), (120, 30, 200)))
        assert out.size == (9, 7)
