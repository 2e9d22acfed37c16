#pragma once
// GpuFence's events: one recorded on each stream of an executor, so that a caller's stream can
// wait for everything queued on them so far.
#include <cuda_runtime_api.h>

#include <span>

#include "kvbm/transfer/gpu_fence.hpp"

namespace kvbm::cuda {

// Records an event on each of `streams` (on the current device); throws kvbm::Error (Cuda).
[[nodiscard]] GpuFence record_fence(std::span<const cudaStream_t> streams);

}  // namespace kvbm::cuda
