#pragma once
// Sizes the copy kernel's descriptor lists are cut by. Free of CUDA headers: the transfer's
// batch rule (batch_sizes.cpp) uses them in builds without CUDA too.
#include <cstddef>
#include <cstdint>

namespace kvbm::cuda {

// Largest piece one descriptor carries: big chunks are cut so warps share the work evenly.
inline constexpr std::uint64_t kMaxDescriptorBytes = 64 * 1024;

// Short lists travel in the launch's own parameters: no descriptor upload, no device
// allocation, one API call. What a one-block request needs, and what lets the first batch of a
// large transfer reach the GPU soonest.
inline constexpr std::uint32_t kMaxInlineDescriptors = 160;

// Descriptors a chunk of `chunk_bytes` needs.
[[nodiscard]] constexpr std::size_t descriptors_per_chunk(std::size_t chunk_bytes) {
  return chunk_bytes == 0 ? 1 : (chunk_bytes + kMaxDescriptorBytes - 1) / kMaxDescriptorBytes;
}

}  // namespace kvbm::cuda
