#include "distributed/replicated_broadcast.hpp"

#include <algorithm>
#include <vector>

#include <cuda_runtime_api.h>

#include "common/make_error.hpp"
#include "distributed/broadcast_pieces.hpp"
#include "layout/chunk_io.hpp"
#include "transfer/backends/cuda/cuda_batching.hpp"
#include "platform/cuda_check.hpp"
#include "platform/cuda_runtime.hpp"
#include "transfer/backends/cuda/copy_kernel.hpp"

namespace kvbm {
std::pair<void*, std::size_t> contiguous_blocks(const Layout& layout, std::size_t count) {
  const auto& config = layout.config();
  const ChunkLocation first = layout.locate(0, 0, 0);
  const ChunkLocation last = layout.locate(count - 1, config.num_layers - 1, config.outer_dim - 1);
  return {first.region->data() + first.offset, last.offset + last.bytes - first.offset};
}

PackedBroadcast::PackedBroadcast(LayoutPtr pool, PackedBroadcastOptions options)
    : pool_(std::move(pool)), options_(options) {
  if (!pool_ || !pool_->kind().is_device()) {
    throw make_error(ErrorCode::InvalidArgument, "replicated mode needs a device pool to broadcast into");
  }
  if (options_.overlapped_ctas <= 0) {
    throw make_error(ErrorCode::InvalidArgument, "the broadcast's overlapped copies need at least one thread block, not {}",
                     options_.overlapped_ctas);
  }
  piece_blocks_ = std::max<std::size_t>(1, options_.staging_bytes / 2 / std::max<std::size_t>(1, block_bytes(*pool_)));
  piece_blocks_ = std::min(piece_blocks_, pool_->config().num_blocks);
}

PackedBroadcast::~PackedBroadcast() = default;

// A stream for the copies, an event per staging half for "its copy is done" and "its broadcast
// is done", and per half a list of copy descriptors in pinned host memory, which the kernel
// reads where it is (UVA).
struct PackedBroadcast::Gpu {
  static constexpr int kThreads = 1024;

  Gpu(int device, std::size_t descriptors) : device(device), capacity(descriptors) {
    cuda::DeviceGuard guard(device);
    cuda::check(cudaDeviceGetAttribute(&all_ctas, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute (SMs)");
    cuda::check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreateWithFlags (packing)");
    for (int h = 0; h < 2; ++h) {
      cuda::check(cudaEventCreateWithFlags(&copied[h], cudaEventDisableTiming), "cudaEventCreate (packing)");
      cuda::check(cudaEventCreateWithFlags(&sent[h], cudaEventDisableTiming), "cudaEventCreate (packing)");
      lists[h] = static_cast<cuda::CopyDescriptor*>(cuda::host_alloc(capacity * sizeof(cuda::CopyDescriptor)));
    }
  }
  ~Gpu() {
    cudaStreamSynchronize(stream);  // nothing may still read the lists
    for (int h = 0; h < 2; ++h) {
      cuda::host_free(lists[h]);
      cudaEventDestroy(copied[h]);
      cudaEventDestroy(sent[h]);
    }
    cudaStreamDestroy(stream);
  }

  int device;
  int all_ctas = 1;
  std::size_t capacity;
  cudaStream_t stream = nullptr;
  std::array<cudaEvent_t, 2> copied{};
  std::array<cudaEvent_t, 2> sent{};
  std::array<cuda::CopyDescriptor*, 2> lists{};
};

void PackedBroadcast::run(NcclCommunicator& communicator, std::span<const std::size_t> blocks) {
  if (blocks.empty()) return;
  const LayoutConfig& shape = pool_->config();
  for (auto& staging : staging_) {
    if (staging) continue;
    LayoutConfig config = shape;
    config.num_blocks = piece_blocks_;
    staging = Layout::allocate(config, pool_->kind(), LayoutForm::FullyContiguous);
  }
  for (std::size_t block : blocks) {
    if (block >= shape.num_blocks) {
      throw make_error(ErrorCode::OutOfRange, "broadcast block {} is not an index below {}", block, shape.num_blocks);
    }
  }
  if (!gpu_) {
    gpu_ = std::make_unique<Gpu>(static_cast<int>(pool_->kind().index()), piece_blocks_ * kernel_descriptors_per_block(*pool_));
  }
  Gpu& gpu = *gpu_;
  cuda::DeviceGuard guard(gpu.device);

  const bool sender = communicator.rank() == 0;
  const std::vector<std::size_t> sizes = broadcast_pieces(blocks.size(), piece_blocks_, options_.ramp_steps);
  std::vector<std::size_t> firsts(sizes.size());
  for (std::size_t piece = 1; piece < sizes.size(); ++piece) firsts[piece] = firsts[piece - 1] + sizes[piece - 1];
  const std::size_t pieces = sizes.size();
  // Writes half `h`'s list for `piece` (pool -> staging when packing, else back) and launches it.
  const auto copy = [&](std::size_t piece, int h, bool pack) {
    cuda::CopyDescriptor* next = gpu.lists[h];
    for (std::size_t i = 0; i < sizes[piece]; ++i) {
      for (std::size_t layer = 0; layer < shape.num_layers; ++layer) {
        for (std::size_t outer = 0; outer < shape.outer_dim; ++outer) {
          const ChunkLocation in_pool = pool_->locate_unchecked(blocks[firsts[piece] + i], layer, outer);
          const ChunkLocation in_staging = staging_[h]->locate_unchecked(i, layer, outer);
          std::byte* pool_address = in_pool.region->data() + in_pool.offset;
          std::byte* staging_address = in_staging.region->data() + in_staging.offset;
          for (std::size_t at = 0; at < in_pool.bytes; at += cuda::kMaxDescriptorBytes) {
            const std::size_t bytes = std::min<std::size_t>(cuda::kMaxDescriptorBytes, in_pool.bytes - at);
            *next++ = pack ? cuda::CopyDescriptor{pool_address + at, staging_address + at, bytes}
                           : cuda::CopyDescriptor{staging_address + at, pool_address + at, bytes};
          }
        }
      }
    }
    const auto descriptors = static_cast<std::uint32_t>(next - gpu.lists[h]);
    // The first packing and the last unpacking overlap no broadcast: they take every SM.
    const bool alone = pack ? piece == 0 : piece + 1 == pieces;
    cuda::check(cuda::launch_copy_kernel(gpu.lists[h], descriptors, alone ? gpu.all_ctas : options_.overlapped_ctas,
                                         Gpu::kThreads, gpu.stream),
                "copy kernel launch (broadcast staging)");
    cuda::check(cudaEventRecord(gpu.copied[h], gpu.stream), "cudaEventRecord (packing)");
  };
  const auto piece_span = [&](std::size_t piece) { return contiguous_blocks(*staging_[piece % 2], sizes[piece]); };
  const auto comm_stream = static_cast<cudaStream_t>(communicator.stream());
  for (std::size_t piece = 0; piece < pieces; ++piece) {
    const int h = static_cast<int>(piece % 2);
    if (sender) {
      // The half's previous broadcast has read its staging (and its list is free again).
      if (piece >= 2) communicator.wait_event(gpu.sent[h]);
      copy(piece, h, true);
      const auto span = piece_span(piece);
      communicator.enqueue_broadcast(std::span(&span, 1), 0, gpu.copied[h]);
      cuda::check(cudaEventRecord(gpu.sent[h], comm_stream), "cudaEventRecord (broadcast)");
    } else {
      // The half's previous piece has been unpacked (its staging and list are free again).
      if (piece >= 2) communicator.wait_event(gpu.copied[h]);
      const auto span = piece_span(piece);
      communicator.enqueue_broadcast(std::span(&span, 1), 0);
      cuda::check(cudaEventRecord(gpu.sent[h], comm_stream), "cudaEventRecord (broadcast)");
      cuda::check(cudaStreamWaitEvent(gpu.stream, gpu.sent[h], 0), "cudaStreamWaitEvent (unpacking)");
      copy(piece, h, false);
    }
  }
  communicator.synchronize();
  for (int h = 0; h < 2; ++h) communicator.wait_event(gpu.copied[h]);
}

}  // namespace kvbm
