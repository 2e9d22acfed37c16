#include "transfer/engine/block_geometry.hpp"

#include <limits>

#include "transfer/backends/cuda/copy_limits.hpp"

namespace kvbm {
namespace {

std::uint64_t address_of(const Layout& layout, std::size_t block, std::size_t layer, std::size_t outer) {
  const ChunkLocation chunk = layout.locate_unchecked(block, layer, outer);
  return reinterpret_cast<std::uint64_t>(chunk.region->data() + chunk.offset);
}

// Whether every group of `k` neighbouring slots is one run of bytes in `slots`.
bool groups_are_adjacent(const std::vector<std::uint64_t>& slots, std::size_t k, std::uint64_t slot_bytes) {
  for (std::size_t i = 0; i < slots.size(); ++i) {
    if (i % k != 0 && slots[i] != slots[i - 1] + slot_bytes) return false;
  }
  return true;
}

std::vector<std::uint64_t> every_kth(const std::vector<std::uint64_t>& slots, std::size_t k) {
  std::vector<std::uint64_t> kept;
  for (std::size_t i = 0; i < slots.size(); i += k) kept.push_back(slots[i]);
  return kept;
}

}  // namespace

std::optional<BlockGeometry> block_geometry(const Layout& src, const Layout& dst) {
  constexpr std::size_t kMaxBlocks = std::numeric_limits<std::uint32_t>::max();
  if (src.config().num_blocks > kMaxBlocks || dst.config().num_blocks > kMaxBlocks) return std::nullopt;
  const auto& config = src.config();
  BlockGeometry geometry;
  for (std::size_t layer = 0; layer < config.num_layers; ++layer) {
    for (std::size_t outer = 0; outer < config.outer_dim; ++outer) {
      geometry.src_slots.push_back(address_of(src, 0, layer, outer));
      geometry.dst_slots.push_back(address_of(dst, 0, layer, outer));
    }
  }
  // The stride is the same for every slot of a layout: block 1 is located (not touched) even
  // where a layout has one block.
  geometry.src_block_stride = address_of(src, 1, 0, 0) - geometry.src_slots.front();
  geometry.dst_block_stride = address_of(dst, 1, 0, 0) - geometry.dst_slots.front();
  geometry.slot_bytes = src.chunk_bytes();
  // The largest merge that holds on both sides (k = 1 always does).
  const std::size_t slots = geometry.src_slots.size();
  for (std::size_t k = slots; k > 1; --k) {
    if (slots % k == 0 && groups_are_adjacent(geometry.src_slots, k, geometry.slot_bytes) &&
        groups_are_adjacent(geometry.dst_slots, k, geometry.slot_bytes)) {
      geometry.src_slots = every_kth(geometry.src_slots, k);
      geometry.dst_slots = every_kth(geometry.dst_slots, k);
      geometry.slot_bytes *= k;
      break;
    }
  }
  if (geometry.src_slots.size() > BlockGeometry::kMaxSlots) return std::nullopt;
  return geometry;
}

bool runs_would_merge(const BlockGeometry& geometry, std::span<const BlockPair> pairs) {
  if (geometry.slot_bytes >= cuda::kMaxDescriptorBytes || geometry.src_block_stride != geometry.slot_bytes ||
      geometry.dst_block_stride != geometry.slot_bytes) {
    return false;
  }
  // Stops once the answer is known: scattered blocks are found out after half of the pairs
  // (the scan is a good part of what a device -> device batch of small blocks costs the CPU).
  const std::size_t needed = (pairs.size() + 1) / 2;
  std::size_t continuing = 0;
  for (std::size_t i = 1; i < pairs.size(); ++i) {
    continuing += pairs[i].first == pairs[i - 1].first + 1 && pairs[i].second == pairs[i - 1].second + 1;
    if (continuing >= needed) return true;
    if (continuing + (pairs.size() - 1 - i) < needed) return false;
  }
  return continuing >= needed;
}

}  // namespace kvbm
