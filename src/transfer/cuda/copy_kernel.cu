#include "transfer/cuda/copy_kernel.hpp"

namespace kvbm::cuda {
namespace {

constexpr int kUnroll = 8;  // 8 x 16 B per thread: a warp moves 4 KiB per step

__device__ void copy_descriptors(const CopyDescriptor* descriptors, std::uint32_t count) {
  const std::uint32_t lane = threadIdx.x & 31u;
  const std::uint32_t warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  const std::uint32_t warps = (gridDim.x * blockDim.x) >> 5;
  for (std::uint32_t i = warp; i < count; i += warps) {
    const CopyDescriptor d = descriptors[i];
    const auto* src_bytes = static_cast<const unsigned char*>(d.src);
    auto* dst_bytes = static_cast<unsigned char*>(d.dst);
    std::uint64_t vector_bytes = 0;
    if (((reinterpret_cast<std::uintptr_t>(d.src) | reinterpret_cast<std::uintptr_t>(d.dst)) & 15u) == 0) {
      const auto* src = static_cast<const uint4*>(d.src);
      auto* dst = static_cast<uint4*>(d.dst);
      const std::uint64_t n = d.bytes / 16;
      for (std::uint64_t base = lane; base < n; base += 32 * kUnroll) {
        uint4 v[kUnroll];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          const std::uint64_t k = base + static_cast<std::uint64_t>(u) * 32;
          if (k < n) v[u] = src[k];
        }
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          const std::uint64_t k = base + static_cast<std::uint64_t>(u) * 32;
          if (k < n) dst[k] = v[u];
        }
      }
      vector_bytes = n * 16;
    }
    // Unaligned chunks, and the tail of aligned ones, byte by byte.
    for (std::uint64_t k = vector_bytes + lane; k < d.bytes; k += 32) dst_bytes[k] = src_bytes[k];
  }
}

__global__ void __launch_bounds__(1024) scattered_copy(const CopyDescriptor* descriptors, std::uint32_t count) {
  copy_descriptors(descriptors, count);
}

template <std::uint32_t N>
struct InlineCopyList {
  CopyDescriptor items[N];
  std::uint32_t count;
};
static_assert(sizeof(InlineCopyList<kMaxInlineDescriptors>) <= 4096, "kernel parameters are limited to 4 KiB");

template <std::uint32_t N>
__global__ void __launch_bounds__(1024) scattered_copy_inline(const InlineCopyList<N> list) {
  // Parameters are read once into shared memory: indexing them by a run-time value would go
  // through local memory.
  __shared__ CopyDescriptor descriptors[N];
  for (std::uint32_t i = threadIdx.x; i < list.count; i += blockDim.x) descriptors[i] = list.items[i];
  __syncthreads();
  copy_descriptors(descriptors, list.count);
}

template <std::uint32_t N>
cudaError_t launch_inline(const CopyDescriptor* descriptors, std::uint32_t count, int ctas, int threads_per_cta,
                          cudaStream_t stream) {
  InlineCopyList<N> list;
  for (std::uint32_t i = 0; i < count; ++i) list.items[i] = descriptors[i];
  list.count = count;
  scattered_copy_inline<N><<<ctas, threads_per_cta, 0, stream>>>(list);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_inline_copy_kernel(const CopyDescriptor* descriptors, std::uint32_t count, int ctas,
                                      int threads_per_cta, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  if (count <= 16) return launch_inline<16>(descriptors, count, ctas, threads_per_cta, stream);
  if (count <= 48) return launch_inline<48>(descriptors, count, ctas, threads_per_cta, stream);
  if (count <= kMaxInlineDescriptors) {
    return launch_inline<kMaxInlineDescriptors>(descriptors, count, ctas, threads_per_cta, stream);
  }
  return cudaErrorInvalidValue;
}

cudaError_t launch_copy_kernel(const CopyDescriptor* device_descriptors, std::uint32_t count, int ctas,
                               int threads_per_cta, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  scattered_copy<<<ctas, threads_per_cta, 0, stream>>>(device_descriptors, count);
  return cudaGetLastError();
}

}  // namespace kvbm::cuda
