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

// Warps that share each of `count` descriptors of `bytes` in all in a short launch of `warps`
// warps: enough to give every warp a part, while each part stays at least one warp's step
// (4 KiB: 32 lanes x 8 loads of 16 bytes). One request of 16 blocks of 64 KiB otherwise runs on
// 16 warps of one CTA, which read host memory at a fraction of PCIe.
[[nodiscard]] constexpr std::uint32_t inline_split(std::size_t count, std::size_t bytes, std::size_t warps) {
  constexpr std::size_t kWarpStep = 4096;
  if (count == 0) return 1;
  const std::size_t by_warps = warps / count;
  const std::size_t by_size = bytes / count / kWarpStep;
  const std::size_t split = by_warps < by_size ? by_warps : by_size;
  return static_cast<std::uint32_t>(split < 1 ? 1 : split);
}

// Descriptors a chunk of `chunk_bytes` needs.
[[nodiscard]] constexpr std::size_t descriptors_per_chunk(std::size_t chunk_bytes) {
  return chunk_bytes == 0 ? 1 : (chunk_bytes + kMaxDescriptorBytes - 1) / kMaxDescriptorBytes;
}

}  // namespace kvbm::cuda
