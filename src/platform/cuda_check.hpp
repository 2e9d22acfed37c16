#pragma once
// Turns CUDA runtime status codes into kvbm::Error (code Cuda) naming the call and the CUDA
// error string. Only for sources built with CUDA.
#include <cuda_runtime_api.h>

#include <concepts>
#include <string_view>

#include "common/make_error.hpp"
#include "kvbm/common/error.hpp"

namespace kvbm::cuda {

inline void check(cudaError_t status, std::string_view what) {
  if (status != cudaSuccess) {
    cudaGetLastError();  // clear non-sticky errors so the context stays usable
    throw make_error(ErrorCode::Cuda, "{} failed: {} ({})", what, cudaGetErrorString(status),
                     cudaGetErrorName(status));
  }
}

// The same, naming the call with `describe()`, which runs only on failure: for calls on a hot
// path (a launch per one-block request), where formatting the name every time would cost more
// than the check.
template <std::invocable Describe>
inline void check(cudaError_t status, Describe&& describe) {
  if (status != cudaSuccess) check(status, std::string_view(describe()));
}

// Makes `ordinal` current for a scope and restores the previous device after.
class DeviceGuard {
 public:
  explicit DeviceGuard(int ordinal) {
    cudaGetDevice(&previous_);
    check(cudaSetDevice(ordinal), fmt::format("cudaSetDevice({})", ordinal));
  }
  ~DeviceGuard() { cudaSetDevice(previous_); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

}  // namespace kvbm::cuda
