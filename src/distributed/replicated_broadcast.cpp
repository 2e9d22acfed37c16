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
  if (options_.slots < 2 || options_.slots > 64) {
    throw make_error(ErrorCode::InvalidArgument, "the broadcast's staging needs 2 to 64 slots, not {}", options_.slots);
  }
  piece_blocks_ = std::max<std::size_t>(1, options_.staging_bytes / options_.slots / std::max<std::size_t>(1, block_bytes(*pool_)));
  piece_blocks_ = std::min(piece_blocks_, pool_->config().num_blocks);
}

PackedBroadcast::~PackedBroadcast() = default;

// A stream for the copies and, per slot, events for "its copy is done" and "its broadcast is
// done", and a list of copy descriptors in pinned host memory, which the kernel reads where it
// is (UVA).
struct PackedBroadcast::Gpu {
  static constexpr int kThreads = 1024;

  Gpu(int device, unsigned slot_count, std::size_t descriptors) : device(device), capacity(descriptors), slots(slot_count) {
    cuda::DeviceGuard guard(device);
    cuda::check(cudaDeviceGetAttribute(&all_ctas, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute (SMs)");
    cuda::check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreateWithFlags (packing)");
    for (Slot& slot : slots) {
      cuda::check(cudaEventCreateWithFlags(&slot.copied, cudaEventDisableTiming), "cudaEventCreate (packing)");
      cuda::check(cudaEventCreateWithFlags(&slot.sent, cudaEventDisableTiming), "cudaEventCreate (packing)");
      slot.list = static_cast<cuda::CopyDescriptor*>(cuda::host_alloc(capacity * sizeof(cuda::CopyDescriptor)));
    }
  }
  ~Gpu() {
    cudaStreamSynchronize(stream);  // nothing may still read the lists
    for (Slot& slot : slots) {
      cuda::host_free(slot.list);
      cudaEventDestroy(slot.copied);
      cudaEventDestroy(slot.sent);
    }
    cudaStreamDestroy(stream);
  }

  struct Slot {
    cudaEvent_t copied = nullptr;
    cudaEvent_t sent = nullptr;
    cuda::CopyDescriptor* list = nullptr;
  };
  int device;
  int all_ctas = 1;
  std::size_t capacity;
  cudaStream_t stream = nullptr;
  std::vector<Slot> slots;
};

void PackedBroadcast::run(NcclCommunicator& communicator, std::span<const std::size_t> blocks) {
  if (blocks.empty()) return;
  const LayoutConfig& shape = pool_->config();
  for (std::size_t block : blocks) {
    if (block >= shape.num_blocks) {
      throw make_error(ErrorCode::OutOfRange, "broadcast block {} is not an index below {}", block, shape.num_blocks);
    }
  }
  if (staging_.empty()) {
    LayoutConfig config = shape;
    config.num_blocks = piece_blocks_;
    for (unsigned slot = 0; slot < options_.slots; ++slot) {
      staging_.push_back(Layout::allocate(config, pool_->kind(), LayoutForm::FullyContiguous));
    }
  }
  if (!gpu_) {
    gpu_ = std::make_unique<Gpu>(static_cast<int>(pool_->kind().index()), options_.slots,
                                 piece_blocks_ * kernel_descriptors_per_block(*pool_));
  }
  Gpu& gpu = *gpu_;
  cuda::DeviceGuard guard(gpu.device);

  const bool sender = communicator.rank() == 0;
  const std::vector<std::size_t> sizes = broadcast_pieces(blocks.size(), piece_blocks_, options_.ramp_steps);
  std::vector<std::size_t> firsts(sizes.size());
  for (std::size_t piece = 1; piece < sizes.size(); ++piece) firsts[piece] = firsts[piece - 1] + sizes[piece - 1];
  const std::size_t pieces = sizes.size();
  // Writes the slot's list for `piece` (pool -> staging when packing, else back) and launches it.
  const auto copy = [&](std::size_t piece, std::size_t slot_index, bool pack) {
    Gpu::Slot& slot = gpu.slots[slot_index];
    // The slot's previous copy has read its list.
    if (piece >= gpu.slots.size()) communicator.wait_event(slot.copied);
    const Layout& staging = *staging_[slot_index];
    cuda::CopyDescriptor* next = slot.list;
    for (std::size_t i = 0; i < sizes[piece]; ++i) {
      for (std::size_t layer = 0; layer < shape.num_layers; ++layer) {
        for (std::size_t outer = 0; outer < shape.outer_dim; ++outer) {
          const ChunkLocation in_pool = pool_->locate_unchecked(blocks[firsts[piece] + i], layer, outer);
          const ChunkLocation in_staging = staging.locate_unchecked(i, layer, outer);
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
    const auto descriptors = static_cast<std::uint32_t>(next - slot.list);
    // The first packing and the last unpacking overlap no broadcast: they take every SM.
    const bool alone = pack ? piece == 0 : piece + 1 == pieces;
    cuda::check(cuda::launch_copy_kernel(slot.list, descriptors, alone ? gpu.all_ctas : options_.overlapped_ctas,
                                         Gpu::kThreads, gpu.stream),
                "copy kernel launch (broadcast staging)");
    cuda::check(cudaEventRecord(slot.copied, gpu.stream), "cudaEventRecord (packing)");
  };
  const auto comm_stream = static_cast<cudaStream_t>(communicator.stream());
  for (std::size_t piece = 0; piece < pieces; ++piece) {
    const std::size_t slot_index = piece % gpu.slots.size();
    Gpu::Slot& slot = gpu.slots[slot_index];
    const bool reused = piece >= gpu.slots.size();
    const auto span = contiguous_blocks(*staging_[slot_index], sizes[piece]);
    if (sender) {
      // The slot's previous broadcast has read its staging.
      if (reused) cuda::check(cudaStreamWaitEvent(gpu.stream, slot.sent, 0), "cudaStreamWaitEvent (packing)");
      copy(piece, slot_index, true);
      communicator.enqueue_broadcast(std::span(&span, 1), 0, slot.copied);
    } else {
      // The slot's previous piece has been unpacked.
      communicator.enqueue_broadcast(std::span(&span, 1), 0, reused ? slot.copied : nullptr);
    }
    cuda::check(cudaEventRecord(slot.sent, comm_stream), "cudaEventRecord (broadcast)");
    if (!sender) {
      cuda::check(cudaStreamWaitEvent(gpu.stream, slot.sent, 0), "cudaStreamWaitEvent (unpacking)");
      copy(piece, slot_index, false);
    }
  }
  communicator.synchronize();
  for (const Gpu::Slot& slot : gpu.slots) communicator.wait_event(slot.copied);
}

}  // namespace kvbm
