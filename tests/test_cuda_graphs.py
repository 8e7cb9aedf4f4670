"""CUDA-graph replay of a network (styleforge.utils.cuda_graphs): the same numbers as eager
calls, for new contents of a captured shape, under autocast, and after the network's
styles are re-selected. Runs where CUDA is available; elsewhere only the pass-through."""

from __future__ import annotations

import pytest
import torch

from styleforge.devices import autocast
from styleforge.nets.transform_net import TransformNet
from styleforge.utils.cuda_graphs import GraphedCalls

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _net(styles: int = 1, device: str = "cpu") -> TransformNet:
    torch.manual_seed(0)
    net = TransformNet(styles=styles)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return net.to(device).eval()


def test_cpu_tensors_go_straight_to_the_function() -> None:
    net = _net()
    graphed = GraphedCalls(net)
    x = torch.rand(1, 3, 32, 32) * 255
    with torch.inference_mode():
        for _ in range(4):
            assert torch.equal(graphed(x), net(x))
    assert not graphed.graphs


@cuda
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_replayed_graph_matches_eager_for_new_contents(precision: str) -> None:
    net = _net(device="cuda")
    graphed = GraphedCalls(net, capacity=2)
    device = torch.device("cuda")
    tol = 1e-3 if precision == "fp32" else 0.5
    for step in range(6):  # the third call of a shape captures it; later ones replay
        for side in (64, 96, 128):
            x = torch.rand(1, 3, side, side + 16, device=device) * 255
            with torch.inference_mode(), autocast(device, precision):
                expected, got = net(x), graphed(x)
            torch.testing.assert_close(got.float(), expected.float(), atol=tol, rtol=0)
    assert len(graphed.graphs) == 2  # the capacity: three shapes, the oldest dropped each time


@cuda
def test_a_returned_output_is_not_overwritten_by_the_next_replay() -> None:
    net = _net(device="cuda")
    graphed = GraphedCalls(net, capture_after=0)
    a, b = (torch.rand(1, 3, 64, 64, device="cuda") * 255 for _ in range(2))
    with torch.inference_mode():
        first = graphed(a)
        kept = first.clone()
        graphed(b)
        torch.testing.assert_close(first, kept, atol=0, rtol=0)


@cuda
def test_reselecting_styles_is_not_replayed_stale() -> None:
    net = _net(styles=3, device="cuda")
    graphed = GraphedCalls(net, capture_after=0)
    x = torch.rand(1, 3, 64, 64, device="cuda") * 255
    with torch.inference_mode():
        for style in (0, 2, 1, 2):
            net.select_styles(style)
            torch.testing.assert_close(graphed(x), net(x), atol=1e-3, rtol=0)


@cuda
def test_compiled_network_is_replayed_as_a_graph_through_style_model(tmp_path: object) -> None:
    """transfer --compile on CUDA: the compiled network, captured on a size's third call,
    gives the eager network's pixels for new images of that size."""
    import numpy as np
    from PIL import Image

    from styleforge.config import TransferOptions
    from styleforge.models.files import save_style_model
    from styleforge.transfer.model import load_style_model

    path = save_style_model(_net(), tmp_path / "m.safetensors", {"steps": 0})  # type: ignore[operator]
    options = {"device": "cuda", "precision": "fp32"}
    eager = load_style_model(path, options=TransferOptions(cuda_graphs=False, **options))
    fast = load_style_model(path, options=TransferOptions(compile=True, **options))
    rng = np.random.default_rng(0)
    for _ in range(4):
        photo = Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
        got, expected = np.asarray(fast.stylize(photo), int), np.asarray(eager.stylize(photo), int)
        assert np.abs(got - expected).max() <= 2
    assert len(fast.forward.graphs) == 1  # type: ignore[attr-defined]
