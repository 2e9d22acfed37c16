#pragma once
// Block-pair copies: the copy kernel works out each chunk's addresses itself, from the block
// indices and the two layouts' geometry, instead of reading a descriptor per chunk that the CPU
// wrote. Expanding pairs into descriptors costs the CPU 40-60 ns a chunk; at 4 KiB the GPU moves
// a chunk in 80 ns, so while batches grow the CPU could barely keep ahead (measured on the
// H100: 77-175 us lost over 256 MiB). A pair costs 8 bytes and a few ns instead.
//
// Every layout form places chunk (block, slot) at slot_base[slot] + block * block_stride, where
// slot = layer * outer_dim + outer. Free of CUDA headers: it is unit-tested everywhere.
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "kvbm/layout/layout.hpp"
#include "kvbm/transfer/block_pair.hpp"

namespace kvbm {

struct BlockGeometry {
  // The kernel holds both slot tables in shared memory (16 KiB at this many slots).
  static constexpr std::size_t kMaxSlots = 1024;

  std::vector<std::uint64_t> src_slots;  // address of each slot's chunk in block 0
  std::vector<std::uint64_t> dst_slots;
  std::uint64_t src_block_stride = 0;
  std::uint64_t dst_block_stride = 0;
  std::uint64_t slot_bytes = 0;  // bytes of one slot: a chunk, or several merged (see block_geometry)
};

// The geometry of copies from `src` to `dst` (memory layouts of one shape). Neighbouring slots
// that are adjacent on both sides become one larger slot, so a fully contiguous pair of layouts
// copies each block as one piece, as the descriptor path's merging does. Empty when the kernel
// cannot take it: more than kMaxSlots slots after merging, or block indices past 32 bits.
[[nodiscard]] std::optional<BlockGeometry> block_geometry(const Layout& src, const Layout& dst);

// Whether the descriptor path would copy these pairs in larger pieces: when the slots of
// neighbouring blocks are adjacent on both sides, pairs (a, b), (a + 1, b + 1) merge into one
// descriptor; worth it when slots are smaller than a descriptor's largest piece and at least
// half the pairs continue a run.
[[nodiscard]] bool runs_would_merge(const BlockGeometry& geometry, std::span<const BlockPair> pairs);

}  // namespace kvbm
