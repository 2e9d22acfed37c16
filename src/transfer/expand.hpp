#pragma once
// From a request (two layouts and block pairs) to copy ops: validation of the whole request,
// then one op per (block, layer, outer) chunk, merged where both sides are contiguous (and
// sorted in file order when a side is on disk).
#include <span>

#include "kvbm/layout/layout.hpp"
#include "kvbm/transfer/block_pair.hpp"
#include "transfer/copy_op.hpp"

namespace kvbm {

// Throws an Error naming the offending index, pair position, field or region.
void validate_request(const Layout& src, const Layout& dst, std::span<const BlockPair> pairs);

// Expands already-validated pairs into merged copy ops.
[[nodiscard]] CopyOps expand_pairs(const Layout& src, const Layout& dst, std::span<const BlockPair> pairs);

}  // namespace kvbm
