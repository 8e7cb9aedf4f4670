// PowerDifference (X - Y)^z as an ONNX Runtime custom operator: node "PowerDifference" in
// the domain "styleforge", float tensors, NumPy broadcasting, float attribute z.
//
// Built by styleforge/ops/ort_library.py and loaded with
// SessionOptions.register_custom_ops_library(path). ORT_API_MANUAL_INIT: the API table
// comes from the runtime that loads the library (RegisterCustomOps below), so the
// library links against nothing and serves any ONNX Runtime at least as new as the
// headers it was compiled with. z = 2 and z = 1 are exact (a multiply, a subtract), as
// in the PyTorch operator; other z use std::pow (NaN for a negative difference to a
// non-integer power, 1 for z = 0).

#define ORT_API_MANUAL_INIT
#include "onnxruntime_cxx_api.h"
#undef ORT_API_MANUAL_INIT
#include "onnxruntime_lite_custom_op.h"

#include <cmath>
#include <memory>
#include <mutex>
#include <vector>

namespace {

// Strides (in elements) of `shape` read as the broadcast `out` shape: 0 along broadcast axes.
std::vector<int64_t> BroadcastStrides(const std::vector<int64_t>& shape, const std::vector<int64_t>& out) {
  std::vector<int64_t> strides(out.size(), 0);
  int64_t stride = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    size_t axis = shape.size() - 1 - i;
    size_t out_axis = out.size() - 1 - i;
    strides[out_axis] = shape[axis] == 1 ? 0 : stride;
    stride *= shape[axis];
  }
  return strides;
}

std::vector<int64_t> BroadcastShape(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  std::vector<int64_t> out(std::max(a.size(), b.size()), 1);
  for (size_t i = 0; i < out.size(); ++i) {
    int64_t da = i < a.size() ? a[a.size() - 1 - i] : 1;
    int64_t db = i < b.size() ? b[b.size() - 1 - i] : 1;
    if (da != db && da != 1 && db != 1) {
      ORT_CXX_API_THROW("PowerDifference: shapes cannot be broadcast together", ORT_INVALID_ARGUMENT);
    }
    out[out.size() - 1 - i] = da == 1 ? db : da;
  }
  return out;
}

template <typename Power>
void Apply(const float* x, const float* y, float* out, const std::vector<int64_t>& shape,
           const std::vector<int64_t>& sx, const std::vector<int64_t>& sy, Power power) {
  const size_t rank = shape.size();
  if (rank == 0) {
    out[0] = power(x[0] - y[0]);
    return;
  }
  const int64_t inner = shape[rank - 1], ix = sx[rank - 1], iy = sy[rank - 1];
  int64_t outer = 1;
  for (size_t axis = 0; axis + 1 < rank; ++axis) outer *= shape[axis];
  std::vector<int64_t> index(rank, 0);
  for (int64_t row = 0; row < outer; ++row) {
    int64_t ox = 0, oy = 0;
    for (size_t axis = 0; axis + 1 < rank; ++axis) {
      ox += index[axis] * sx[axis];
      oy += index[axis] * sy[axis];
    }
    float* dst = out + row * inner;
    const float* px = x + ox;
    const float* py = y + oy;
    if (ix == 1 && iy == 1) {
      for (int64_t k = 0; k < inner; ++k) dst[k] = power(px[k] - py[k]);
    } else if (ix == 1 && iy == 0) {
      const float b = *py;
      for (int64_t k = 0; k < inner; ++k) dst[k] = power(px[k] - b);
    } else {
      for (int64_t k = 0; k < inner; ++k) dst[k] = power(px[k * ix] - py[k * iy]);
    }
    for (size_t axis = rank - 1; axis-- > 0;) {  // next row: odometer over the outer axes
      if (++index[axis] < shape[axis]) break;
      index[axis] = 0;
    }
  }
}

struct PowerDifference {
  PowerDifference(const OrtApi* api, const OrtKernelInfo* info) {
    z_ = Ort::ConstKernelInfo(info).GetAttribute<float>("z");
  }

  void Compute(const Ort::Custom::Tensor<float>& x, const Ort::Custom::Tensor<float>& y, Ort::Custom::Tensor<float>& out) {
    const std::vector<int64_t> shape = BroadcastShape(x.Shape(), y.Shape());
    float* dst = out.Allocate(shape);
    if (out.NumberOfElement() == 0) return;
    const std::vector<int64_t> sx = BroadcastStrides(x.Shape(), shape), sy = BroadcastStrides(y.Shape(), shape);
    if (z_ == 2.0f) {
      Apply(x.Data(), y.Data(), dst, shape, sx, sy, [](float d) { return d * d; });
    } else if (z_ == 1.0f) {
      Apply(x.Data(), y.Data(), dst, shape, sx, sy, [](float d) { return d; });
    } else {
      const float z = z_;
      Apply(x.Data(), y.Data(), dst, shape, sx, sy, [z](float d) { return std::pow(d, z); });
    }
  }

  float z_ = 2.0f;
};

std::mutex domains_mutex;
std::vector<std::unique_ptr<Ort::CustomOpDomain>> domains;
std::unique_ptr<Ort::Custom::OrtLiteCustomOp> power_difference_op;

}  // namespace

extern "C" OrtStatus* ORT_API_CALL RegisterCustomOps(OrtSessionOptions* options, const OrtApiBase* api_base) {
  Ort::InitApi(api_base->GetApi(ORT_API_VERSION));
  Ort::Status status{nullptr};
  try {
    std::lock_guard<std::mutex> lock(domains_mutex);
    if (!power_difference_op) {
      power_difference_op.reset(Ort::Custom::CreateLiteCustomOp<PowerDifference>("PowerDifference", "CPUExecutionProvider"));
    }
    auto domain = std::make_unique<Ort::CustomOpDomain>("styleforge");
    domain->Add(power_difference_op.get());
    Ort::UnownedSessionOptions(options).Add(*domain);
    domains.push_back(std::move(domain));
  } catch (const std::exception& e) {
    status = Ort::Status(e.what(), ORT_FAIL);
  }
  return status.release();
}
