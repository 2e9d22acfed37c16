#pragma once
// Replicated mode's collective: the device blocks rank 0 loaded are broadcast to the same
// blocks of every rank. One broadcast per block (the seed's way) is latency-bound for small
// blocks, so the blocks are packed into a contiguous device staging buffer by the block-pair
// copy kernel (the host writes a pair of indices per block, not a descriptor per chunk),
// broadcast in a few large pieces, and unpacked on the other ranks. The staging is cut into
// slots that pieces take in turn, so packing or unpacking one piece overlaps broadcasting
// another. The GPU orders it all by events (a slot is packed again once its broadcast has read
// it, received into again once it is unpacked); the host waits only to rewrite a slot's copy
// list, which its previous copy has read by then unless the host is a whole round of slots
// ahead. The copies that overlap a broadcast take a few SMs, leaving NCCL its own.
#include <cstddef>
#include <memory>
#include <span>
#include <vector>

#include "kvbm/distributed/nccl_communicator.hpp"
#include "kvbm/layout/layout.hpp"

namespace kvbm {

struct PackedBroadcastOptions {
  // Bounds the staging memory: `slots` pieces, each holding one block at the least. 128 MiB in
  // two slots: pieces of up to 64 MiB, since each broadcast call costs a fixed time.
  std::size_t staging_bytes = std::size_t{128} << 20;
  // Pieces in flight at once: more slots let the packing run further ahead of the broadcasts,
  // at the price of smaller pieces for the same staging.
  unsigned slots = 2;
  // How many times the first and last pieces halve (broadcast_pieces): smaller end pieces
  // shorten the packing and unpacking that overlap no broadcast, but each piece is a broadcast
  // call of its own, and calls cost: on 2 H200s, 16 MiB pieces moved 32 KiB blocks at 0.43 of
  // one contiguous broadcast, 64 MiB pieces at 0.84. None until the two-GPU bench
  // (kvbm_nccl_bench 256 5 128:4:32, its "pieces" column) shows that halving pays.
  unsigned ramp_steps = 0;
  // Thread blocks of the copies that overlap a broadcast.
  int overlapped_ctas = 32;
};

class PackedBroadcast {
 public:
  // `pool` is this rank's device layout. Allocates the staging and the copy lists: InvalidArgument
  // for bad options, the allocation's error (naming the staging) when the device is full.
  explicit PackedBroadcast(LayoutPtr pool, PackedBroadcastOptions options = {});
  ~PackedBroadcast();
  PackedBroadcast(const PackedBroadcast&) = delete;
  PackedBroadcast& operator=(const PackedBroadcast&) = delete;

  // Rank 0 sends `blocks` of its pool, every other rank receives them into the same blocks.
  // Every rank calls it with the same blocks, in the same order of requests. Throws what the
  // copies or the communicator throw (Timeout when a rank is gone).
  void run(NcclCommunicator& communicator, std::span<const std::size_t> blocks);

  [[nodiscard]] std::size_t blocks_per_piece() const { return piece_blocks_; }

 private:
  LayoutPtr pool_;
  PackedBroadcastOptions options_;
  std::size_t piece_blocks_;
  std::vector<LayoutPtr> staging_;  // a layout of piece_blocks_ blocks per slot
  struct Gpu;                       // the copies' stream, events and descriptor lists
  std::unique_ptr<Gpu> gpu_;
};

// A layout's blocks [0, count) as one span of device memory (a fully contiguous layout's).
[[nodiscard]] std::pair<void*, std::size_t> contiguous_blocks(const Layout& layout, std::size_t count);

}  // namespace kvbm
