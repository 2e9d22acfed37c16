#pragma once
// The scattered-copy kernel: each warp copies one descriptor at a time with 16-byte vector
// accesses, UNROLL loads in flight per thread, so few CTAs keep PCIe busy even at 4 KiB.
// Host pointers must be pinned (UVA); device pointers may belong to peers with access enabled.
#include <cuda_runtime_api.h>

#include <cstdint>

#include "transfer/backends/cuda/copy_limits.hpp"

namespace kvbm::cuda {

struct CopyDescriptor {
  const void* src;
  void* dst;
  std::uint64_t bytes;
};

// A batch of block pairs for the block-pair kernel (see transfer/block_geometry.hpp): chunk
// (block, slot) of a side lives at its slots[slot] + block * block_stride.
struct BlockIndexPair {
  std::uint32_t src;
  std::uint32_t dst;
};

struct BlockCopyList {
  const std::uint64_t* slots;   // slot_count source addresses, then slot_count destination ones
  const BlockIndexPair* pairs;  // pair_count pairs
  std::uint32_t pair_count;
  std::uint32_t slot_count;     // at most BlockGeometry::kMaxSlots: both tables sit in shared memory
  std::uint64_t src_block_stride;
  std::uint64_t dst_block_stride;
  std::uint64_t slot_bytes;     // cut into pieces of kMaxDescriptorBytes, as descriptors are
};

cudaError_t launch_block_copy_kernel(const BlockCopyList& list, int ctas, int threads_per_cta, cudaStream_t stream);

cudaError_t launch_copy_kernel(const CopyDescriptor* device_descriptors, std::uint32_t count, int ctas,
                               int threads_per_cta, cudaStream_t stream);

// How a kernel announces its own end, instead of a stream memory operation and an event queued
// after it (two driver calls on the submitting thread, about 3.5 us, with the context's lock
// held, and a memory operation the GPU runs only once the kernel has retired). Each thread
// fences its writes system-wide; the last CTA to finish (counted in `arrivals`, device memory
// that is zero between launches) writes `number` to `word`, pinned host memory mapped into the
// device. A host thread that sees the number therefore sees every byte the kernel wrote.
struct KernelSignal {
  std::uint64_t* word = nullptr;  // nullptr: the kernel signals nothing
  std::uint32_t* arrivals = nullptr;
  std::uint64_t number = 0;
};

// Lists of up to kMaxInlineDescriptors travel in the launch's own parameters (see copy_limits.hpp).
// A launch copies its whole parameter block, so the kernel comes in a few list sizes and the
// smallest that holds `count` descriptors is launched: a one-block request of 8 chunks sends
// 416 bytes of parameters, not 4 KiB. Each descriptor is shared by `split` warps (see
// inline_split), so a short list can still use every CTA it is given.
cudaError_t launch_inline_copy_kernel(const CopyDescriptor* descriptors, std::uint32_t count, int ctas,
                                      int threads_per_cta, cudaStream_t stream, const KernelSignal& signal = {},
                                      std::uint32_t split = 1);

}  // namespace kvbm::cuda
