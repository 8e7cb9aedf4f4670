// PowerDifference (X - Y)^Z on CUDA: a library of its own, compiled when a CUDA toolkit and
// a GPU are present (styleforge/ops/native.py). TensorIterator broadcasts and promotes as
// on the CPU; gpu_kernel launches on the current stream. Half and bfloat16 compute in
// float (opmath) and round once.

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/TensorIterator.h>
#include <ATen/native/cuda/Loops.cuh>
#include <torch/library.h>

#include "power_difference_iterator.h"

namespace styleforge {

at::Tensor power_difference_cuda(const at::Tensor& x, const at::Tensor& y, double z) {
  TORCH_CHECK(x.device().is_cuda() && y.device().is_cuda(), "power_difference_cuda: tensors must be on one CUDA device");
  auto iter = power_difference_iterator(x, y);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, iter.common_dtype(), "power_difference_cuda", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    if (z == 2.0) {
      at::native::gpu_kernel(iter, [] GPU_LAMBDA(scalar_t a, scalar_t b) -> scalar_t {
        opmath_t d = static_cast<opmath_t>(a) - static_cast<opmath_t>(b);
        return static_cast<scalar_t>(d * d);
      });
    } else if (z == 1.0) {
      at::native::gpu_kernel(iter, [] GPU_LAMBDA(scalar_t a, scalar_t b) -> scalar_t {
        return static_cast<scalar_t>(static_cast<opmath_t>(a) - static_cast<opmath_t>(b));
      });
    } else {
      const opmath_t power = static_cast<opmath_t>(z);
      at::native::gpu_kernel(iter, [power] GPU_LAMBDA(scalar_t a, scalar_t b) -> scalar_t {
        return static_cast<scalar_t>(::pow(static_cast<opmath_t>(a) - static_cast<opmath_t>(b), power));
      });
    }
  });
  return iter.output();
}

TORCH_LIBRARY_IMPL(styleforge, CUDA, m) {
  m.impl("power_difference", &power_difference_cuda);
}

}  // namespace styleforge
