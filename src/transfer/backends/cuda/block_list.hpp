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

// Writes the list into `memory` (block_list_bytes of it, 8-byte aligned). Indices are checked
// to fit 32 bits by block_geometry.
inline void write_block_list(const BlockGeometry& geometry, std::span<const BlockPair> pairs, void* memory) {
  auto* table = static_cast<std::uint64_t*>(memory);
  const std::size_t slots = geometry.src_slots.size();
  std::copy(geometry.src_slots.begin(), geometry.src_slots.end(), table);
  std::copy(geometry.dst_slots.begin(), geometry.dst_slots.end(), table + slots);
  auto* indices = reinterpret_cast<BlockIndexPair*>(table + 2 * slots);
  for (const auto& [from, to] : pairs) *indices++ = {static_cast<std::uint32_t>(from), static_cast<std::uint32_t>(to)};
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
