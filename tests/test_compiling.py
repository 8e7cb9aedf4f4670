"""torch.compile's artefacts go to the styleforge cache folder (styleforge.utils.compiling)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from styleforge.utils.compiling import CACHE_VARIABLE, compile_cache_dir, compile_network

SCRIPT = """
import torch
from styleforge.utils.compiling import compile_network
net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
x = torch.rand(1, 3, 16, 16)
with torch.inference_mode():
    assert torch.allclose(compile_network(net)(x), net(x), atol=1e-5)
"""


def test_compiled_kernels_land_in_the_styleforge_cache(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != CACHE_VARIABLE}
    env["STYLEFORGE_HOME"] = str(tmp_path / "home")
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    cached = [p for p in (tmp_path / "home" / "compile").rglob("*") if p.is_file()]
    assert cached, "nothing was cached under the styleforge home"


def test_a_cache_folder_set_by_the_user_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_VARIABLE, str(tmp_path / "mine"))
    compile_network(torch.nn.Identity())  # compilation itself is lazy: nothing runs yet
    assert os.environ[CACHE_VARIABLE] == str(tmp_path / "mine")
    monkeypatch.delenv(CACHE_VARIABLE)
    compile_network(torch.nn.Identity())
    assert os.environ[CACHE_VARIABLE] == str(compile_cache_dir())


def test_transfer_with_compile_matches_the_eager_network(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from styleforge.config import TransferOptions
    from styleforge.models.files import save_style_model
    from styleforge.nets.transform_net import TransformNet
    from styleforge.transfer.model import load_style_model

    torch.manual_seed(0)
    path = save_style_model(TransformNet(), tmp_path / "m.safetensors", {"steps": 0}, Image.new("RGB", (8, 8)))
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8))
    options = {"device": "cpu", "precision": "fp32"}
    eager = np.asarray(load_style_model(path, options=TransferOptions(**options)).stylize(photo), np.int16)
    compiled_model = load_style_model(path, options=TransferOptions(compile=True, **options))
    compiled = np.asarray(compiled_model.stylize(photo), np.int16)
    assert compiled.shape == eager.shape and np.abs(compiled - eager).max() <= 1
    # Where the kernels go is checked in a fresh process above: in this one, Inductor may
    # already hold them in memory from an earlier compilation.


def test_each_size_gets_its_own_static_graph() -> None:
    """A third size compiles a third graph: no size is turned into a symbolic one (whose
    kernels were slower) and reused."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    compiled = compile_network(net)
    with torch.inference_mode():
        for side in (16, 24, 20):
            x = torch.rand(1, 3, side, side)
            torch.testing.assert_close(compiled(x), net(x), atol=1e-5, rtol=1e-5)
    assert counters["stats"]["unique_graphs"] == 3
