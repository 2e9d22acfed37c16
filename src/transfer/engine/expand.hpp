#pragma once
// From a checked request (two layouts and block pairs, see request_validator.hpp) to copy ops:
// one op per (block, layer, outer) chunk, merged where both sides are contiguous (and sorted in
// file order when a side is on disk).
#include <span>

#include "kvbm/layout/layout.hpp"
#include "kvbm/transfer/block_pair.hpp"
#include "transfer/engine/copy_op.hpp"

namespace kvbm {

// Expands already-validated pairs into merged copy ops.
[[nodiscard]] CopyOps expand_pairs(const Layout& src, const Layout& dst, std::span<const BlockPair> pairs);

}  // namespace kvbm
