#include "distributed/replicated_broadcast.hpp"

#include <algorithm>
#include <optional>
#include <vector>

#include <cuda_runtime_api.h>

#include "common/make_error.hpp"
#include "distributed/broadcast_pieces.hpp"
#include "layout/chunk_io.hpp"
#include "transfer/backends/cuda/cuda_batching.hpp"
#include "platform/cuda_check.hpp"
#include "platform/cuda_runtime.hpp"
#include "transfer/backends/cuda/block_list.hpp"
#include "transfer/backends/cuda/copy_kernel.hpp"
#include "transfer/engine/block_geometry.hpp"
#include "transfer/engine/expand.hpp"

namespace kvbm {
std::pair<void*, std::size_t> contiguous_blocks(const Layout& layout, std::size_t count) {
  const auto& config = layout.config();
  const ChunkLocation first = layout.locate(0, 0, 0);
  const ChunkLocation last = layout.locate(count - 1, config.num_layers - 1, config.outer_dim - 1);
  return {first.region->data() + first.offset, last.offset + last.bytes - first.offset};
}

// A stream for the copies and, per slot, events for "its copy is done" and "its broadcast is
// done", and the list its copies read, in pinned host memory, which the kernel reads where it
// is (UVA). The list holds block pairs (pool block, staging block) for the block-pair kernel,
// which works out each chunk's addresses itself: a few ns a block for the host, where writing
// a descriptor per chunk costs 40-60 ns a chunk (block_geometry.hpp) and would keep the GPU
// waiting for the first piece's list. Pools whose geometry that kernel cannot take get
// descriptors.
struct PackedBroadcast::Gpu {
  static constexpr int kThreads = 1024;

  struct Slot {
    cudaEvent_t copied = nullptr;
    cudaEvent_t sent = nullptr;
    void* list = nullptr;
    std::optional<BlockGeometry> pack;  // pool -> this slot's staging
    std::optional<BlockGeometry> unpack;
  };

  Gpu(int device, const Layout& pool, const std::vector<LayoutPtr>& staging, std::size_t piece_blocks)
      : device(device), slots(staging.size()) {
    cuda::DeviceGuard guard(device);
    cuda::check(cudaDeviceGetAttribute(&all_ctas, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute (SMs)");
    cuda::check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreateWithFlags (packing)");
    for (std::size_t index = 0; index < slots.size(); ++index) {
      Slot& slot = slots[index];
      cuda::check(cudaEventCreateWithFlags(&slot.copied, cudaEventDisableTiming), "cudaEventCreate (packing)");
      cuda::check(cudaEventCreateWithFlags(&slot.sent, cudaEventDisableTiming), "cudaEventCreate (packing)");
      slot.pack = block_geometry(pool, *staging[index]);
      slot.unpack = block_geometry(*staging[index], pool);
      const std::size_t bytes = slot.pack && slot.unpack
                                    ? cuda::block_list_bytes(*slot.pack, piece_blocks)
                                    : piece_blocks * kernel_descriptors_per_block(pool) * sizeof(cuda::CopyDescriptor);
      slot.list = cuda::host_alloc(bytes);
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

  int device;
  int all_ctas = 1;
  cudaStream_t stream = nullptr;
  std::vector<Slot> slots;
  std::vector<BlockPair> pairs;  // the piece being listed
};

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
  // Made now, not at the first broadcast: a rank that cannot get its staging fails here, on its
  // own, rather than in the middle of a collective that the other ranks have entered.
  LayoutConfig config = pool_->config();
  config.num_blocks = piece_blocks_;
  try {
    for (unsigned slot = 0; slot < options_.slots; ++slot) {
      staging_.push_back(Layout::allocate(config, pool_->kind(), LayoutForm::FullyContiguous));
    }
  } catch (const Error& error) {
    throw make_error(error.code(), "replicated mode's broadcast staging ({} slots of {} bytes on {}): {}", options_.slots,
                     piece_blocks_ * block_bytes(*pool_), pool_->kind().to_string(), error.message());
  }
  gpu_ = std::make_unique<Gpu>(static_cast<int>(pool_->kind().index()), *pool_, staging_, piece_blocks_);
}

PackedBroadcast::~PackedBroadcast() = default;

void PackedBroadcast::run(NcclCommunicator& communicator, std::span<const std::size_t> blocks) {
  if (blocks.empty()) return;
  const LayoutConfig& shape = pool_->config();
  for (std::size_t block : blocks) {
    if (block >= shape.num_blocks) {
      throw make_error(ErrorCode::OutOfRange, "broadcast block {} is not an index below {}", block, shape.num_blocks);
    }
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
    // The first packing and the last unpacking overlap no broadcast: they take every SM.
    const bool alone = pack ? piece == 0 : piece + 1 == pieces;
    const int ctas = alone ? gpu.all_ctas : options_.overlapped_ctas;
    gpu.pairs.clear();
    for (std::size_t i = 0; i < sizes[piece]; ++i) {
      const std::size_t in_pool = blocks[firsts[piece] + i];
      gpu.pairs.push_back(pack ? BlockPair{in_pool, i} : BlockPair{i, in_pool});
    }
    if (slot.pack && slot.unpack) {
      const BlockGeometry& geometry = pack ? *slot.pack : *slot.unpack;
      cuda::write_block_list(geometry, gpu.pairs, slot.list);
      cuda::check(cuda::launch_block_copy_kernel(cuda::block_list_at(slot.list, geometry, gpu.pairs.size()), ctas,
                                                 Gpu::kThreads, gpu.stream),
                  "copy kernel launch (broadcast staging)");
    } else {
      const Layout& from = pack ? *pool_ : *staging_[slot_index];
      const Layout& to = pack ? *staging_[slot_index] : *pool_;
      auto* list = static_cast<cuda::CopyDescriptor*>(slot.list);
      cuda::CopyDescriptor* next = list;
      for_each_piece(expand_pairs(from, to, gpu.pairs), cuda::kMaxDescriptorBytes, [&](const CopyOp& piece) {
        *next++ = {piece.src.address(), piece.dst.address(), piece.bytes};
      });
      cuda::check(cuda::launch_copy_kernel(list, static_cast<std::uint32_t>(next - list), ctas, Gpu::kThreads, gpu.stream),
                  "copy kernel launch (broadcast staging)");
    }
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
