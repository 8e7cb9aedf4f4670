"""torch.ops.styleforge.power_difference: values and gradients against the plain
expression, finite differences (gradcheck), opcheck, torch.compile and torch.export; the
same tests run again in a subprocess with the native library off."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import styleforge.ops as ops
from styleforge.ops import power_difference
from tests.setup_hints import install_hint

ROOT = Path(__file__).resolve().parents[2]

#: (x shape, y shape): scalar, row, column, full, size-1 dimensions on both sides.
SHAPES = [
    ((2, 3, 4, 5), ()),
    ((2, 3, 4, 5), (5,)),
    ((2, 3, 4, 5), (4, 1)),
    ((2, 3, 4, 5), (2, 3, 4, 5)),
    ((2, 1, 4, 1), (1, 3, 1, 5)),
    ((3, 1), (1, 3, 4)),
    ((), (2, 3)),
]
POWERS = [1.0, 2.0, 3.0, 0.5, 0.0]


def _inputs(xs: tuple, ys: tuple, z: float, dtype: torch.dtype, grad: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(hash((xs, ys, z)) % 2**31)
    x = torch.randn(xs, generator=generator, dtype=torch.float64)
    y = torch.randn(ys, generator=generator, dtype=torch.float64)
    if z == 0.5:  # non-integer powers need positive differences (NaN otherwise, as pow)
        x = x.abs() + 0.5 + y.max()
    x, y = x.to(dtype), y.to(dtype)
    return x.requires_grad_(grad), y.requires_grad_(grad)


def test_kernel_in_use_matches_the_environment() -> None:
    if os.environ.get("STYLEFORGE_NATIVE_OPS") == "0":
        assert ops.KERNEL == "pytorch"
    elif os.environ.get("STYLEFORGE_REQUIRE_NATIVE_OPS") == "1":  # CI: a compiler is there, the native kernel must be
        assert ops.KERNEL == "native"
    else:
        assert ops.KERNEL in ("native", "pytorch")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("z", POWERS)
@pytest.mark.parametrize("shapes", SHAPES)
def test_values_equal_the_expression(shapes: tuple, z: float, dtype: torch.dtype) -> None:
    x, y = _inputs(*shapes, z, dtype)
    got = power_difference(x, y, z)
    expected = (x - y) ** z
    assert got.shape == expected.shape and got.dtype == dtype and got.is_contiguous()
    if z in (0.0, 1.0, 2.0):
        assert torch.equal(got, expected)  # exact paths: the squared difference bit for bit
    else:
        tol = {torch.float32: 2e-6, torch.float64: 1e-14, torch.bfloat16: 8e-3}[dtype]
        torch.testing.assert_close(got, expected, rtol=tol, atol=tol)


def test_defined_behaviour_at_the_edges() -> None:
    x, y = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 2.0, 1.0])
    assert torch.isnan(power_difference(x, y, 0.5)[0]) and power_difference(x, y, 0.5)[2] == 2.0**0.5
    assert torch.equal(power_difference(x, y, 0.0), torch.ones(3))  # ones, also where x == y
    assert power_difference(x, y, 2.0).tolist() == [1.0, 0.0, 4.0]
    mixed = power_difference(torch.ones(2, dtype=torch.float32), torch.ones(2, dtype=torch.float64), 2.0)
    assert mixed.dtype == torch.float64  # promoted as x - y would be
    with pytest.raises(TypeError, match="floating-point"):
        power_difference(torch.ones(2, dtype=torch.int64), torch.ones(2, dtype=torch.int64), 2.0)


@pytest.mark.parametrize("z", POWERS)
@pytest.mark.parametrize("shapes", SHAPES)
def test_gradients_against_finite_differences(shapes: tuple, z: float) -> None:
    x, y = _inputs(*shapes, z, torch.float64, grad=True)
    assert torch.autograd.gradcheck(lambda a, b: power_difference(a, b, z), (x, y))
    assert torch.autograd.gradgradcheck(lambda a, b: power_difference(a, b, z), (x, y))


@pytest.mark.parametrize("shapes", SHAPES[:5])
def test_gradients_equal_the_expression_and_respect_needs_input_grad(shapes: tuple) -> None:
    x, y = _inputs(*shapes, 3.0, torch.float32, grad=True)
    g = torch.randn(torch.broadcast_shapes(x.shape, y.shape), generator=torch.Generator().manual_seed(7))
    got = torch.autograd.grad(power_difference(x, y, 3.0), (x, y), g)
    expected = torch.autograd.grad((x - y) ** 3, (x, y), g)
    # The truth in float64: a broadcast input's gradient is a float32 sum of
    # numel(g) / numel(input) terms, whose rounding grows with that count (a fixed 1e-5
    # failed now and then for y of shape (5,) summed over 24 terms).
    x64, y64 = (t.detach().double().requires_grad_() for t in (x, y))
    truth = torch.autograd.grad((x64 - y64) ** 3, (x64, y64), g.double())
    for a, b, exact in zip(got, expected, truth, strict=True):
        terms = g.numel() // exact.numel()
        tolerance = 1e-6 * terms * max(1.0, float(exact.abs().max()))  # float32 rounding of a sum of ``terms`` values
        torch.testing.assert_close(a.double(), exact, rtol=1e-5, atol=tolerance)
        torch.testing.assert_close(b.double(), exact, rtol=1e-5, atol=tolerance)
    only_x = torch.autograd.grad(power_difference(x, y.detach(), 3.0), (x,), g)[0]
    torch.testing.assert_close(only_x, expected[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shapes", [SHAPES[1], SHAPES[4]])
def test_opcheck(shapes: tuple) -> None:
    for z in (2.0, 3.0):
        x, y = _inputs(*shapes, z, torch.float32, grad=True)
        torch.library.opcheck(torch.ops.styleforge.power_difference.default, (x, y, z))
        torch.library.opcheck(torch.ops.styleforge.power_difference.default, (x.detach(), y.detach(), z))


class _Variance(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(2, 3), keepdim=True)
        return power_difference(x, mean, 2.0).mean(dim=(2, 3))


def test_compile_fullgraph_and_export() -> None:
    x = torch.randn(2, 4, 6, 5, requires_grad=True)
    expected = x.var(dim=(2, 3), unbiased=False)
    compiled = torch.compile(_Variance(), fullgraph=True, backend="aot_eager")
    got = compiled(x)
    torch.testing.assert_close(got, expected)
    got.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    exported = torch.export.export(_Variance(), (x.detach(),))
    assert any("power_difference" in str(node.target) for node in exported.graph.nodes)
    torch.testing.assert_close(exported.module()(x.detach()), expected.detach())


@pytest.mark.skipif(os.environ.get("STYLEFORGE_NATIVE_OPS") == "0", reason="this run is the fallback run")
def test_the_same_tests_pass_with_the_pure_pytorch_kernel() -> None:
    env = {**os.environ, "STYLEFORGE_NATIVE_OPS": "0"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", str(Path(__file__))],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "failed" not in done.stdout


@pytest.mark.skipif(os.environ.get("STYLEFORGE_NATIVE_OPS") == "0", reason="runs both kernels itself: once is enough")
@pytest.mark.parametrize("capability", ["", "avx2", "default"], ids=["this-cpu", "avx2", "scalar"])
def test_native_and_fallback_give_the_same_numbers(tmp_path: Path, capability: str) -> None:
    """The native kernel is built per PyTorch CPU capability (ops/native.py's
    CAPABILITY_FLAGS); ATEN_CPU_CAPABILITY makes PyTorch report a lower one, so the AVX2
    and scalar builds run on every x86-64 CPU here, and the AVX-512 one where the CPU has it."""
    code = (
        "import torch, styleforge.ops as o; g = torch.Generator().manual_seed(0); "
        "x = torch.randn(2, 8, 9, 7, generator=g); y = torch.randn(8, 1, 7, generator=g); "
        "torch.save({z: o.power_difference(x, y, z) for z in (1.0, 2.0, 3.0, 0.0)} | {'kernel': o.KERNEL}, __import__('sys').argv[1])"
    )
    results = {}
    env = {key: value for key, value in os.environ.items() if key != "ATEN_CPU_CAPABILITY"}
    if capability:
        env["ATEN_CPU_CAPABILITY"] = capability
    for flag in ("1", "0"):
        out = tmp_path / f"{flag}.pt"
        subprocess.run([sys.executable, "-c", code, str(out)], env={**env, "STYLEFORGE_NATIVE_OPS": flag},
                       check=True, capture_output=True, timeout=300)
        results[flag] = torch.load(out)
    if results["1"]["kernel"] != "native":
        if os.environ.get("STYLEFORGE_REQUIRE_NATIVE_OPS") == "1":
            pytest.fail("STYLEFORGE_REQUIRE_NATIVE_OPS=1 but the native kernel did not build")
        pytest.skip(f"no C++ compiler here: only the pure-PyTorch kernel exists; {install_hint('c++')}")
    assert results["1"].pop("kernel") == "native" and results["0"].pop("kernel") == "pytorch"
    for z, value in results["1"].items():
        assert torch.equal(value, results["0"][z]), z


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_cuda_values_and_gradients(dtype: torch.dtype) -> None:
    for xs, ys in SHAPES:
        for z in POWERS:
            x, y = (t.cuda() for t in _inputs(xs, ys, z, dtype))
            got = power_difference(x, y, z)
            # The kernel works in the operands' dtype: the difference is rounded (relative
            # error u, the unit roundoff), the power multiplies that by z and rounds again
            # (z u + u), and the reference's own rounding adds u: (z + 2) u in all, which
            # matters in half precision (u = 2^-8 bf16, 2^-11 fp16; an H200 showed 1.3e-2
            # and 1.6e-3 relative, over 1 ulp).
            unit = {torch.float32: 1e-6, torch.float64: 5e-15, torch.bfloat16: 2**-8, torch.float16: 2**-11}[dtype]
            tol = (max(z, 1.0) + 2) * unit
            torch.testing.assert_close(got, ((x.double() - y.double()) ** z).to(dtype), rtol=tol, atol=tol)
    x, y = (t.cuda().requires_grad_() for t in _inputs((2, 3, 4, 5), (4, 1), 3.0, torch.float64))
    assert torch.autograd.gradcheck(lambda a, b: power_difference(a, b, 3.0), (x, y))
