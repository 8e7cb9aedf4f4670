// PowerDifference (X - Y)^Z on the CPU: the kernel behind torch.ops.styleforge.power_difference.
//
// The schema is defined once, in Python (styleforge/ops/power_difference.py); this file
// only adds the CPU implementation. TensorIterator broadcasts X and Y as NumPy does,
// promotes their dtypes, splits the work across threads (at::parallel_for inside
// cpu_kernel_vec) and hands contiguous runs to the vectorised lambda (AVX2/AVX-512 via
// at::vec::Vectorized). Z = 1, 2, 3 and 0.5 take the same exact paths as PyTorch's own
// pow (subtract, multiplies, sqrt), so Z = 2 equals SquaredDifference bit for bit and the
// pure-PyTorch fallback gives the same numbers; other Z go through pow, with pow's rules:
// NaN for a negative difference to a non-integer power, 1 for Z = 0.

#include <ATen/Dispatch.h>
#include <ATen/TensorIterator.h>
#include <ATen/native/cpu/Loops.h>
#include <ATen/cpu/vec/vec.h>
#include <torch/library.h>

#include "power_difference_iterator.h"

namespace styleforge {

at::Tensor power_difference_cpu(const at::Tensor& x, const at::Tensor& y, double z) {
  TORCH_CHECK(x.device().is_cpu() && y.device().is_cpu(), "power_difference_cpu: tensors must be on the CPU");
  auto iter = power_difference_iterator(x, y);
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, iter.common_dtype(), "power_difference_cpu", [&] {
    using Vec = at::vec::Vectorized<scalar_t>;
    if (z == 2.0) {
      at::native::cpu_kernel_vec(
          iter, [](scalar_t a, scalar_t b) -> scalar_t { scalar_t d = a - b; return d * d; },
          [](Vec a, Vec b) -> Vec { Vec d = a - b; return d * d; });
    } else if (z == 3.0) {
      at::native::cpu_kernel_vec(
          iter, [](scalar_t a, scalar_t b) -> scalar_t { scalar_t d = a - b; return d * d * d; },
          [](Vec a, Vec b) -> Vec { Vec d = a - b; return d * d * d; });
    } else if (z == 1.0) {
      at::native::cpu_kernel_vec(
          iter, [](scalar_t a, scalar_t b) -> scalar_t { return a - b; },
          [](Vec a, Vec b) -> Vec { return a - b; });
    } else if (z == 0.5) {
      at::native::cpu_kernel_vec(
          iter, [](scalar_t a, scalar_t b) -> scalar_t { return std::sqrt(a - b); },
          [](Vec a, Vec b) -> Vec { return (a - b).sqrt(); });
    } else {
      const scalar_t power = static_cast<scalar_t>(z);
      const Vec power_vec(power);
      at::native::cpu_kernel_vec(
          iter, [power](scalar_t a, scalar_t b) -> scalar_t { return std::pow(a - b, power); },
          [power_vec](Vec a, Vec b) -> Vec { return (a - b).pow(power_vec); });
    }
  });
  return iter.output();
}

TORCH_LIBRARY_IMPL(styleforge, CPU, m) {
  m.impl("power_difference", &power_difference_cpu);
}

}  // namespace styleforge
