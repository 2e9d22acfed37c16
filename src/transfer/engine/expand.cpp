#include "transfer/engine/expand.hpp"

#include <algorithm>

#include "common/make_error.hpp"

namespace kvbm {
namespace {

bool contiguous(const CopyOp& before, const CopyOp& after) {
  return before.src.region == after.src.region && before.dst.region == after.dst.region &&
         before.src.offset + before.bytes == after.src.offset && before.dst.offset + before.bytes == after.dst.offset;
}

bool file_order(const CopyOp& a, const CopyOp& b, bool by_destination) {
  const Location& ka = by_destination ? a.dst : a.src;
  const Location& kb = by_destination ? b.dst : b.src;
  return ka.region != kb.region ? std::less<>{}(ka.region, kb.region) : ka.offset < kb.offset;
}

}  // namespace

CopyOps expand_pairs(const Layout& src, const Layout& dst, std::span<const BlockPair> pairs) {
  const auto& config = src.config();
  const std::size_t slots = config.num_layers * config.outer_dim;
  CopyOps ops;
  ops.reserve(pairs.size() * slots);
  // A chunk merges into the op just before it (the next chunk of the same block) or into the
  // last op of its own (layer, outer) slot (the same chunk of the previous block): runs of
  // adjacent blocks become one op in every layout form, without sorting.
  std::vector<std::size_t> last_of_slot(slots, SIZE_MAX);
  for (const auto& [from, to] : pairs) {
    for (std::size_t layer = 0; layer < config.num_layers; ++layer) {
      for (std::size_t outer = 0; outer < config.outer_dim; ++outer) {
        const ChunkLocation s = src.locate_unchecked(from, layer, outer);
        const ChunkLocation d = dst.locate_unchecked(to, layer, outer);
        const CopyOp op{{s.region, s.offset}, {d.region, d.offset}, s.bytes};
        std::size_t& slot = last_of_slot[layer * config.outer_dim + outer];
        if (!ops.empty() && contiguous(ops.back(), op)) {
          ops.back().bytes += op.bytes;
          slot = ops.size() - 1;
        } else if (slot != SIZE_MAX && contiguous(ops[slot], op)) {
          ops[slot].bytes += op.bytes;
        } else {
          slot = ops.size();
          ops.push_back(op);
        }
      }
    }
  }
  // Disk I/O goes in file order (the file is walked upwards, which disks and their caches
  // like; measured in bench/results). Memory copies keep the request's order: sorting costs
  // more CPU than the copies it would help.
  if (src.kind().is_disk() || dst.kind().is_disk()) {
    const bool by_destination = dst.kind().is_disk() && !src.kind().is_disk();
    std::sort(ops.begin(), ops.end(), [&](const CopyOp& a, const CopyOp& b) { return file_order(a, b, by_destination); });
    CopyOps merged;
    merged.reserve(ops.size());
    for (const CopyOp& op : ops) {
      if (!merged.empty() && contiguous(merged.back(), op)) merged.back().bytes += op.bytes;
      else merged.push_back(op);
    }
    ops = std::move(merged);
  }
  return ops;
}

}  // namespace kvbm
