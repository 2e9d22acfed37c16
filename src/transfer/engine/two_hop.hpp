#pragma once
// Two-hop transfers (disk -> disk; later device <-> disk and device -> remote) streamed through
// the bounce pool in slices: hop 1 of one slice overlaps hop 2 of the previous one, and at most
// pool.count() slices are in flight, so memory stays bounded however large the transfer.
#include "transfer/engine/bounce_pool.hpp"
#include "transfer/engine/copy_op.hpp"

namespace kvbm {

// One slice: the pieces of ops that fit in one bounce buffer, each at its offset in the buffer.
struct BounceSlice {
  struct Piece {
    Location src;
    Location dst;
    std::size_t bytes;
    std::size_t bounce_offset;  // 4 KiB-aligned, so O_DIRECT can use the buffer directly
  };
  std::vector<Piece> pieces;
};

// Cuts ops into slices that each fit `buffer_bytes`.
[[nodiscard]] std::vector<BounceSlice> slice_for_bounce(const CopyOps& ops, std::size_t buffer_bytes);

void run_two_hop(CopyOps ops, Executor& first, Executor& second, BouncePool& pool, DoneCallback done);

}  // namespace kvbm
