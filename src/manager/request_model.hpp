#pragma once
// A request as the replay model runs it on one tier pool, for the offline bound, the policy
// bench and the policy tests: told to the pool, its cached prefix held, the rest registered in
// the blocks the pool hands out (as many as it can), all of it held until the caller lets go.
// Also the layout such pools need: a byte a block, as no bytes move.
#include <span>
#include <vector>

#include "kvbm/manager/tier_pool.hpp"

namespace kvbm {

struct HeldRequest {
  std::vector<BlockHandle> blocks;  // the cached prefix, then the blocks registered for the rest
  std::size_t hits = 0;             // the cached prefix's length
};

inline HeldRequest hold_request(TierPool& pool, std::span<const SequenceHash> hashes) {
  pool.note_request(hashes);
  HeldRequest request;
  for (; request.hits < hashes.size(); ++request.hits) {
    auto found = pool.acquire(hashes[request.hits]);
    if (!found) break;
    request.blocks.push_back(std::move(*found));
  }
  const std::vector<BlockHandle> fresh = pool.allocate(hashes.size() - request.hits);
  for (std::size_t i = 0; i < fresh.size(); ++i) (void)pool.register_block(fresh[i], hashes[request.hits + i]);
  request.blocks.insert(request.blocks.end(), fresh.begin(), fresh.end());
  return request;
}

// Lets go of the blocks last first, as a request does at its end.
inline void release_tail_first(std::vector<BlockHandle>& blocks) {
  while (!blocks.empty()) blocks.pop_back();
}

inline LayoutPtr bookkeeping_layout(std::size_t blocks) {
  const LayoutConfig shape{.num_blocks = blocks, .num_layers = 1, .outer_dim = 1, .page_size = 1, .inner_dim = 1,
                           .dtype_bytes = 1};
  return Layout::allocate(shape, StorageKind::system(), LayoutForm::FullyContiguous);
}

}  // namespace kvbm
