r"""PowerDifference, :math:`(X - Y)^Z`: the operator of the course's section 4.4.

``torch.ops.styleforge.power_difference(Tensor x, Tensor y, float z) -> Tensor``

* ``x`` and ``y`` broadcast as in NumPy/PyTorch and are promoted to their common
  floating dtype (float32, float64, bfloat16; float16 through the pure-PyTorch kernel);
  the result is contiguous.
* ``z`` follows ``pow``: a negative difference to a non-integer power is NaN, and
  ``z = 0`` gives ones (also where ``x == y``). ``z = 2`` is exactly the squared
  difference, ``z = 1`` the difference.
* Gradients: :math:`\partial L/\partial x = z (x - y)^{z-1} g`, summed over the
  dimensions ``x`` was broadcast along, and :math:`\partial L/\partial y` its negation
  summed to ``y``'s shape; for ``z = 0`` both are zero. Backward saves ``x`` and ``y``
  only (not the ``x - y`` intermediate the expression ``(x - y) ** z`` keeps) and uses
  the operator itself, so it is differentiable again.

The schema, the fake (meta) kernel and the autograd formula are defined here, once.
The CPU kernel is the C++ one (``csrc/power_difference.cpp``, built on first use by
:mod:`~styleforge.ops.native`), the CUDA one ``csrc/power_difference_cuda.cu`` where a
GPU and a CUDA toolkit are present; where they cannot be built, the same operator is
registered in pure PyTorch. :data:`KERNEL` and :data:`CUDA_KERNEL` say which serve.
"""

from __future__ import annotations

import torch

from styleforge.ops.native import load_native_library

OP = "styleforge::power_difference"

torch.library.define(OP, "(Tensor x, Tensor y, float z) -> Tensor")


def _result_dtype(x: torch.Tensor, y: torch.Tensor) -> torch.dtype:
    dtype = torch.result_type(x, y)
    if not dtype.is_floating_point:
        raise TypeError(f"power_difference: floating-point tensors expected, got {x.dtype} and {y.dtype}")
    return dtype


@torch.library.register_fake(OP)
def _fake(x: torch.Tensor, y: torch.Tensor, z: float) -> torch.Tensor:
    # Broadcast through aten.sub's own meta function: it reasons about symbolic sizes
    # without guarding on them (torch.broadcast_shapes would specialise a batch of 1).
    return torch.empty_like(x.to(_result_dtype(x, y)) - y, memory_format=torch.contiguous_format)


def reference_power_difference(x: torch.Tensor, y: torch.Tensor, z: float) -> torch.Tensor:
    """The operator in plain PyTorch (the fallback kernel and the tests' reference)."""
    dtype = _result_dtype(x, y)
    difference = x.to(dtype) - y.to(dtype)
    if z == 2.0:
        return (difference * difference).contiguous()
    if z == 1.0:
        return difference.contiguous()
    return difference.pow(z).contiguous()


def _setup_context(ctx: torch.autograd.function.FunctionCtx, inputs: tuple, output: torch.Tensor) -> None:
    x, y, z = inputs
    ctx.z = z
    ctx.save_for_backward(x, y)


def _backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple:
    x, y = ctx.saved_tensors
    z = ctx.z
    need_x, need_y = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    if z == 0.0:
        local = grad.new_zeros(torch.broadcast_shapes(x.shape, y.shape))
    else:
        local = torch.ops.styleforge.power_difference(x, y, z - 1.0) * grad
        if z != 1.0:
            local = local.mul_(z) if not local.requires_grad else local * z  # in place unless double backward
    grad_x = local.sum_to_size(x.shape).to(x.dtype) if need_x else None
    grad_y = local.sum_to_size(y.shape).neg().to(y.dtype) if need_y else None  # negate the reduced tensor
    return grad_x, grad_y, None


torch.library.register_autograd(OP, _backward, setup_context=_setup_context)


def _register_kernels() -> tuple[str, str]:
    """Register the kernels; returns which serve the CPU and CUDA (``native`` or ``pytorch``)."""
    cpu, cuda = load_native_library()
    fallback_devices = [device for device, native in (("cpu", cpu), ("cuda", cuda)) if not native]
    if fallback_devices:
        torch.library.register_kernel(OP, tuple(fallback_devices), reference_power_difference)
    return ("native" if cpu else "pytorch"), ("native" if cuda else "pytorch")


#: Which kernel serves the CPU and CUDA: ``native`` (the C++/CUDA library) or ``pytorch`` (the fallback).
KERNEL, CUDA_KERNEL = _register_kernels()



def power_difference(x: torch.Tensor, y: torch.Tensor, z: float) -> torch.Tensor:
    """:math:`(x - y)^z` with broadcasting (module docstring); returns a new tensor."""
    return torch.ops.styleforge.power_difference(x, y, float(z))
