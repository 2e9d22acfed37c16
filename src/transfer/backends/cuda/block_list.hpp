#pragma once
// The list a block-pair kernel launch reads: both slot tables of a BlockGeometry, then the pairs
// as 32-bit indices. Written by the CUDA executor for each batch (and by the phases bench),
// read by the kernel through a BlockCopyList.
#include <algorithm>
#include <cstdint>
#include <span>

#include "kvbm/transfer/block_pair.hpp"
#include "transfer/backends/cuda/copy_kernel.hpp"
#include "transfer/engine/block_geometry.hpp"

namespace kvbm::cuda {

[[nodiscard]] inline std::size_t block_list_bytes(const BlockGeometry& geometry, std::size_t pairs) {
  return 2 * geometry.src_slots.size() * sizeof(std::uint64_t) + pairs * sizeof(BlockIndexPair);
}

// The list starts with both slot tables; the pairs follow them.
inline void write_block_tables(const BlockGeometry& geometry, void* memory) {
  auto* table = static_cast<std::uint64_t*>(memory);
  std::copy(geometry.src_slots.begin(), geometry.src_slots.end(), table);
  std::copy(geometry.dst_slots.begin(), geometry.dst_slots.end(), table + geometry.src_slots.size());
}

// Writes pairs [first, last) into their place in the list at `memory`. Indices are checked to
// fit 32 bits by block_geometry.
inline void write_block_indices(const BlockGeometry& geometry, std::span<const BlockPair> pairs, std::size_t first,
                                std::size_t last, void* memory) {
  auto* indices = reinterpret_cast<BlockIndexPair*>(static_cast<std::uint64_t*>(memory) + 2 * geometry.src_slots.size());
  for (std::size_t i = first; i < last; ++i) {
    indices[i] = {static_cast<std::uint32_t>(pairs[i].first), static_cast<std::uint32_t>(pairs[i].second)};
  }
}

// Writes the whole list into `memory` (block_list_bytes of it, 8-byte aligned).
inline void write_block_list(const BlockGeometry& geometry, std::span<const BlockPair> pairs, void* memory) {
  write_block_tables(geometry, memory);
  write_block_indices(geometry, pairs, 0, pairs.size(), memory);
}

// The kernel's view of a list of `pairs` pairs written by write_block_list, now at `list`
// (device memory, or pinned memory the device reads in place).
[[nodiscard]] inline BlockCopyList block_list_at(const void* list, const BlockGeometry& geometry, std::size_t pairs) {
  const auto* table = static_cast<const std::uint64_t*>(list);
  const std::size_t slots = geometry.src_slots.size();
  return {table,
          reinterpret_cast<const BlockIndexPair*>(table + 2 * slots),
          static_cast<std::uint32_t>(pairs),
          static_cast<std::uint32_t>(slots),
          geometry.src_block_stride,
          geometry.dst_block_stride,
          geometry.slot_bytes};
}

}  // namespace kvbm::cuda
