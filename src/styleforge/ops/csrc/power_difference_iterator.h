// The one TensorIterator both PowerDifference kernels (CPU and CUDA) run over: output
// allocated to the broadcast shape, inputs promoted to their common dtype (as x - y
// would be), and a floating-point check with the same message on every device.

#pragma once

#include <ATen/TensorIterator.h>

namespace styleforge {

inline at::TensorIterator power_difference_iterator(const at::Tensor& x, const at::Tensor& y) {
  at::Tensor out;
  auto iter = at::TensorIteratorConfig()
                  .add_output(out)
                  .add_const_input(x)
                  .add_const_input(y)
                  .promote_inputs_to_common_dtype(true)
                  .cast_common_dtype_to_outputs(true)
                  .enforce_safe_casting_to_output(false)
                  .build();
  TORCH_CHECK_TYPE(at::isFloatingType(iter.common_dtype()), "power_difference: floating-point tensors expected, got ",
                   iter.common_dtype());
  return iter;
}

}  // namespace styleforge
