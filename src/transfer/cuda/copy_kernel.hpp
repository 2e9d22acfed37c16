#pragma once
// The scattered-copy kernel: each warp copies one descriptor at a time with 16-byte vector
// accesses, UNROLL loads in flight per thread, so few CTAs keep PCIe busy even at 4 KiB.
// Host pointers must be pinned (UVA); device pointers may belong to peers with access enabled.
#include <cuda_runtime_api.h>

#include <cstdint>

#include "transfer/cuda/copy_limits.hpp"

namespace kvbm::cuda {

struct CopyDescriptor {
  const void* src;
  void* dst;
  std::uint64_t bytes;
};

cudaError_t launch_copy_kernel(const CopyDescriptor* device_descriptors, std::uint32_t count, int ctas,
                               int threads_per_cta, cudaStream_t stream);

// Lists of up to kMaxInlineDescriptors travel in the launch's own parameters (see copy_limits.hpp).
// A launch copies its whole parameter block, so the kernel comes in a few list sizes and the
// smallest that holds `count` descriptors is launched: a one-block request of 8 chunks sends
// 392 bytes of parameters, not 4 KiB.
cudaError_t launch_inline_copy_kernel(const CopyDescriptor* descriptors, std::uint32_t count, int ctas,
                                      int threads_per_cta, cudaStream_t stream);

}  // namespace kvbm::cuda
