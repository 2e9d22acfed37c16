// Eviction-policy cost: each policy runs the built-in agentic and chat workloads through a real
// TierPool under the replay model (a request's prefix held, its misses registered, everything
// let go last first), on a tier of 1% and of 5% of the trace's unique blocks. A "decision" is
// one block of one request: its lookup, and for a miss its eviction and registration, and its
// release; the pool's lock and bookkeeping are in the figure, as a caller pays them. The same
// loop with a pool that never evicts (as many blocks as the trace) is the floor beside it.
// Budget: one microsecond a decision.
#include <fmt/format.h>

#include <chrono>
#include <iostream>
#include <unordered_set>

#include "kvbm/manager/tier_pool.hpp"
#include "manager/request_model.hpp"
#include "tools/replay_trace.hpp"

using namespace kvbm;

namespace {

double nanos_per_block(const tools::Trace& trace, std::size_t blocks, std::unique_ptr<EvictionPolicy> policy,
                       std::size_t& decisions) {
  TierPool pool(Tier::Host, bookkeeping_layout(blocks), std::move(policy));
  decisions = 0;
  const auto start = std::chrono::steady_clock::now();
  for (const auto& request : trace.requests) {
    HeldRequest held = hold_request(pool, request.blocks);
    release_tail_first(held.blocks);
    decisions += request.blocks.size();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return seconds * 1e9 / static_cast<double>(decisions);
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t requests = argc > 1 ? std::stoul(argv[1]) : 20000;
  std::cout << fmt::format("{:<10} {:<17} {:>8} {:>12} {:>10} {:>11} {:>7}\n", "workload", "policy", "tier", "decisions",
                           "ns/block", "floor ns", "budget");
  for (const auto& [name, trace] : {std::pair{"agentic", tools::agentic_trace(requests, 7)},
                                    std::pair{"chat", tools::synthetic_trace(requests, 7)}}) {
    std::unordered_set<std::uint64_t> unique;
    for (const auto& request : trace.requests) unique.insert(request.blocks.begin(), request.blocks.end());
    std::size_t decisions = 0;
    const double floor = nanos_per_block(trace, unique.size(), make_lru_policy(), decisions);
    for (const double share : {0.01, 0.05}) {
      const auto blocks = std::max<std::size_t>(16, static_cast<std::size_t>(static_cast<double>(unique.size()) * share));
      for (EvictionPolicyKind kind : all_eviction_policies()) {
        const double ns = nanos_per_block(trace, blocks, make_eviction_policy(kind, blocks), decisions);
        std::cout << fmt::format("{:<10} {:<17} {:>7.0f}% {:>12} {:>10.0f} {:>11.0f} {:>7}\n", name, to_string(kind), share * 100,
                                 decisions, ns, floor, ns <= 1000 ? "ok" : "OVER");
      }
    }
  }
  return 0;
}
