#pragma once
// The room a better eviction policy could win, for `kvbm replay --sequential`: the top tier
// alone (the tiers below left out) replayed under the manager's rules (a request holds all its
// blocks, registers what it lacked, releases tail first), once with a policy and once evicting,
// each time, the unheld block whose next use lies farthest ahead in the trace (Belady's offline
// optimum). Hash ids only: no bytes move.
#include <cstddef>
#include <optional>

#include "kvbm/manager/eviction_policy.hpp"
#include "replay_trace.hpp"

namespace kvbm::tools {

// Top-tier hits of `trace` with a tier of `blocks` blocks: under `policy`, or (nullopt) Belady's.
[[nodiscard]] std::size_t top_tier_hits(const Trace& trace, std::size_t blocks, std::optional<EvictionPolicyKind> policy);

}  // namespace kvbm::tools
