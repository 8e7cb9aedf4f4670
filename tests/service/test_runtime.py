"""The runtime the service's fast styles run in (``ServiceSettings.runtime``): the model a
job thread gets has chosen it, as ``transfer --runtime`` would for a long-lived program."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from styleforge.deploy.export import export_style_model
from styleforge.service.jobs.runner import _cached_style_model
from tests.conftest import make_photo
from tests.synthetic import small_style_model

pytest.importorskip("openvino")


def test_each_setting_gives_its_runtime_and_the_same_picture(tmp_path: Path) -> None:
    path = small_style_model(tmp_path)
    photo = Image.open(make_photo(tmp_path / "p.png", (48, 40))).convert("RGB")
    mtime = path.stat().st_mtime_ns
    pytorch = _cached_style_model(str(path), mtime, "cpu", None, "pytorch")
    openvino = _cached_style_model(str(path), mtime, "cpu", None, "openvino")
    assert pytorch.runtime_choice.runtime == "pytorch" and openvino.runtime_choice.runtime == "openvino"
    assert "openvino" in openvino.device_description
    a, b = (np.asarray(m.stylize(photo), dtype=np.int16) for m in (pytorch, openvino))
    assert np.abs(a - b).mean() < 3  # the same picture (bf16 autocast against OpenVINO bf16 where native: not bit-equal)


def test_an_exported_style_runs_in_its_own_runtime_whatever_the_setting(tmp_path: Path) -> None:
    exported = export_style_model(small_style_model(tmp_path), tmp_path / "m.onnx").path
    model = _cached_style_model(str(exported), exported.stat().st_mtime_ns, "cpu", None, "pytorch")
    assert model.runtime_choice.runtime in ("onnxruntime", "openvino")
