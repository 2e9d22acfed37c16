#include "transfer/backends/cuda/copy_kernel.hpp"

namespace kvbm::cuda {
namespace {

constexpr int kUnroll = 8;  // 8 x 16 B per thread: a warp moves 4 KiB per step

// One warp copies `bytes` from `src` to `dst`; `lane` is the thread's lane in the warp.
__device__ void copy_bytes(const void* src, void* dst, std::uint64_t bytes, std::uint32_t lane) {
  const auto* src_bytes = static_cast<const unsigned char*>(src);
  auto* dst_bytes = static_cast<unsigned char*>(dst);
  std::uint64_t vector_bytes = 0;
  if (((reinterpret_cast<std::uintptr_t>(src) | reinterpret_cast<std::uintptr_t>(dst)) & 15u) == 0) {
    const auto* src_vectors = static_cast<const uint4*>(src);
    auto* dst_vectors = static_cast<uint4*>(dst);
    const std::uint64_t n = bytes / 16;
    for (std::uint64_t base = lane; base < n; base += 32 * kUnroll) {
      uint4 v[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const std::uint64_t k = base + static_cast<std::uint64_t>(u) * 32;
        if (k < n) v[u] = src_vectors[k];
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const std::uint64_t k = base + static_cast<std::uint64_t>(u) * 32;
        if (k < n) dst_vectors[k] = v[u];
      }
    }
    vector_bytes = n * 16;
  }
  // Unaligned chunks, and the tail of aligned ones, byte by byte.
  for (std::uint64_t k = vector_bytes + lane; k < bytes; k += 32) dst_bytes[k] = src_bytes[k];
}

__device__ std::uint32_t lane_id() { return threadIdx.x & 31u; }
__device__ std::uint64_t warp_id() { return (static_cast<std::uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5; }
__device__ std::uint64_t warp_count() { return (static_cast<std::uint64_t>(gridDim.x) * blockDim.x) >> 5; }

// Each descriptor is shared by `split` warps, each taking one part of it: a short list then
// reaches as many warps as a long one. Parts are whole 16-byte vectors, so the parts of an
// aligned descriptor are aligned too.
__device__ void copy_descriptors(const CopyDescriptor* descriptors, std::uint32_t count, std::uint32_t split) {
  const std::uint64_t items = static_cast<std::uint64_t>(count) * split;
  for (std::uint64_t i = warp_id(); i < items; i += warp_count()) {
    const CopyDescriptor d = descriptors[i / split];
    const std::uint64_t part_bytes = ((d.bytes + split - 1) / split + 15) & ~std::uint64_t{15};
    const std::uint64_t begin = (i % split) * part_bytes;
    if (begin >= d.bytes) continue;
    const std::uint64_t bytes = d.bytes - begin < part_bytes ? d.bytes - begin : part_bytes;
    copy_bytes(static_cast<const unsigned char*>(d.src) + begin, static_cast<unsigned char*>(d.dst) + begin, bytes,
               lane_id());
  }
}

__global__ void __launch_bounds__(1024) scattered_copy(const CopyDescriptor* descriptors, std::uint32_t count) {
  copy_descriptors(descriptors, count, 1);
}

// The end of a kernel that signals it (see KernelSignal). Kernels of one stream run one after
// another, so the last CTA may reset the count for the next launch.
__device__ void signal_end(const KernelSignal& signal) {
  if (signal.word == nullptr) return;
  __threadfence_system();  // this thread's writes, visible to the host before the count moves
  __syncthreads();
  if (threadIdx.x != 0) return;
  if (gridDim.x > 1) {
    if (atomicAdd(signal.arrivals, 1u) != gridDim.x - 1) return;
    *signal.arrivals = 0;
    __threadfence_system();  // the other CTAs' writes, fenced before their count, come before the word
  }
  *static_cast<volatile std::uint64_t*>(signal.word) = signal.number;
}

template <std::uint32_t N>
struct InlineCopyList {
  CopyDescriptor items[N];
  std::uint32_t count;
  std::uint32_t split;
  KernelSignal signal;
};
static_assert(sizeof(InlineCopyList<kMaxInlineDescriptors>) <= 4096, "kernel parameters are limited to 4 KiB");

template <std::uint32_t N>
__global__ void __launch_bounds__(1024) scattered_copy_inline(const InlineCopyList<N> list) {
  // Parameters are read once into shared memory: indexing them by a run-time value would go
  // through local memory.
  __shared__ CopyDescriptor descriptors[N];
  for (std::uint32_t i = threadIdx.x; i < list.count; i += blockDim.x) descriptors[i] = list.items[i];
  __syncthreads();
  copy_descriptors(descriptors, list.count, list.split);
  signal_end(list.signal);
}

template <std::uint32_t N>
cudaError_t launch_inline(const CopyDescriptor* descriptors, std::uint32_t count, std::uint32_t split, int ctas,
                          int threads_per_cta, cudaStream_t stream, const KernelSignal& signal) {
  InlineCopyList<N> list;
  for (std::uint32_t i = 0; i < count; ++i) list.items[i] = descriptors[i];
  list.count = count;
  list.split = split;
  list.signal = signal;
  scattered_copy_inline<N><<<ctas, threads_per_cta, 0, stream>>>(list);
  return cudaGetLastError();
}

// Each warp takes (pair, slot, piece) items in turn and works out both addresses itself.
// `Index` is 32 bits wide where the items allow: a 64-bit division costs several times more,
// and there are four per item.
template <typename Index>
__global__ void __launch_bounds__(1024) block_pair_copy(const BlockCopyList list) {
  extern __shared__ std::uint64_t slots[];  // the source's slot table, then the destination's
  for (std::uint32_t i = threadIdx.x; i < 2 * list.slot_count; i += blockDim.x) slots[i] = list.slots[i];
  __syncthreads();
  const Index pieces = static_cast<Index>((list.slot_bytes + kMaxDescriptorBytes - 1) / kMaxDescriptorBytes);
  const Index slot_count = list.slot_count;
  const Index items = static_cast<Index>(list.pair_count) * slot_count * pieces;
  const Index warps = static_cast<Index>(warp_count());
  for (Index item = static_cast<Index>(warp_id()); item < items; item += warps) {
    const Index piece = item % pieces;
    const Index chunk = item / pieces;
    const Index slot = chunk % slot_count;
    const BlockIndexPair blocks = list.pairs[chunk / slot_count];
    const std::uint64_t offset = static_cast<std::uint64_t>(piece) * kMaxDescriptorBytes;
    const std::uint64_t left = list.slot_bytes - offset;
    const std::uint64_t bytes = left < kMaxDescriptorBytes ? left : kMaxDescriptorBytes;
    const std::uint64_t src = slots[slot] + blocks.src * list.src_block_stride + offset;
    const std::uint64_t dst = slots[slot_count + slot] + blocks.dst * list.dst_block_stride + offset;
    copy_bytes(reinterpret_cast<const void*>(src), reinterpret_cast<void*>(dst), bytes, lane_id());
  }
}

}  // namespace

cudaError_t launch_inline_copy_kernel(const CopyDescriptor* descriptors, std::uint32_t count, int ctas,
                                      int threads_per_cta, cudaStream_t stream, const KernelSignal& signal,
                                      std::uint32_t split) {
  if (count == 0) return cudaSuccess;
  if (split == 0) return cudaErrorInvalidValue;
  if (count <= 16) return launch_inline<16>(descriptors, count, split, ctas, threads_per_cta, stream, signal);
  if (count <= 48) return launch_inline<48>(descriptors, count, split, ctas, threads_per_cta, stream, signal);
  if (count <= kMaxInlineDescriptors) {
    return launch_inline<kMaxInlineDescriptors>(descriptors, count, split, ctas, threads_per_cta, stream, signal);
  }
  return cudaErrorInvalidValue;
}

cudaError_t launch_copy_kernel(const CopyDescriptor* device_descriptors, std::uint32_t count, int ctas,
                               int threads_per_cta, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  scattered_copy<<<ctas, threads_per_cta, 0, stream>>>(device_descriptors, count);
  return cudaGetLastError();
}

cudaError_t launch_block_copy_kernel(const BlockCopyList& list, int ctas, int threads_per_cta, cudaStream_t stream) {
  if (list.pair_count == 0) return cudaSuccess;
  const std::size_t shared_bytes = 2 * std::size_t{list.slot_count} * sizeof(std::uint64_t);
  // Items and the warp stride past the last one must both fit the index.
  const std::uint64_t reach = std::uint64_t{list.pair_count} * list.slot_count * descriptors_per_chunk(list.slot_bytes) +
                              std::uint64_t(ctas) * static_cast<std::uint64_t>(threads_per_cta);
  if (reach <= UINT32_MAX) {
    block_pair_copy<std::uint32_t><<<ctas, threads_per_cta, shared_bytes, stream>>>(list);
  } else {
    block_pair_copy<std::uint64_t><<<ctas, threads_per_cta, shared_bytes, stream>>>(list);
  }
  return cudaGetLastError();
}

}  // namespace kvbm::cuda
