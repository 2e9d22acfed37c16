#include "replay_bound.hpp"

#include <algorithm>
#include <limits>
#include <memory>
#include <unordered_map>

#include "kvbm/manager/tier_pool.hpp"
#include "manager/request_model.hpp"

namespace kvbm::tools {
namespace {

// When each hash id is used: request indices, ascending.
using UseTable = std::unordered_map<std::uint64_t, std::vector<std::size_t>>;

// Evicts the candidate whose next use (after the current request) is farthest away; one never
// used again first of all. Among candidates next used together, the one released first goes: a
// request releases its blocks last first, so a prefix loses its tail, never its head (which
// would waste the rest: a hit needs every block before it). Scans the candidates: the bound is
// computed once, off the hot path.
class BeladyPolicy final : public EvictionPolicy {
 public:
  BeladyPolicy(const UseTable& uses, const std::size_t& now) : uses_(uses), now_(now) {}
  void add(BlockId block, SequenceHash hash, int) override { candidates_[block] = {hash, releases_++}; }
  void remove(BlockId block) override { candidates_.erase(block); }
  std::optional<BlockId> victim() override {
    std::optional<BlockId> best;
    std::size_t farthest = 0;
    std::uint64_t released = 0;
    for (const auto& [block, candidate] : candidates_) {
      const std::size_t next = next_use(candidate.hash);
      if (!best || next > farthest || (next == farthest && candidate.released < released)) {
        best = block;
        farthest = next;
        released = candidate.released;
      }
    }
    return best;
  }
  std::string_view name() const override { return "belady"; }

 private:
  std::size_t next_use(SequenceHash hash) const {
    const auto found = uses_.find(hash);
    if (found == uses_.end()) return std::numeric_limits<std::size_t>::max();
    const auto next = std::upper_bound(found->second.begin(), found->second.end(), now_);
    return next == found->second.end() ? std::numeric_limits<std::size_t>::max() : *next;
  }
  const UseTable& uses_;
  const std::size_t& now_;
  struct Candidate {
    SequenceHash hash;
    std::uint64_t released;  // release order
  };
  std::unordered_map<BlockId, Candidate> candidates_;
  std::uint64_t releases_ = 0;
};

}  // namespace

std::size_t top_tier_hits(const Trace& trace, std::size_t blocks, std::optional<EvictionPolicyKind> policy) {
  if (blocks == 0) return 0;
  UseTable uses;
  for (std::size_t r = 0; r < trace.requests.size(); ++r) {
    for (std::uint64_t id : trace.requests[r].blocks) {
      auto& list = uses[id];
      if (list.empty() || list.back() != r) list.push_back(r);
    }
  }
  std::size_t now = 0;
  TierPool pool(Tier::Device, bookkeeping_layout(blocks),
                policy ? make_eviction_policy(*policy, blocks) : std::make_unique<BeladyPolicy>(uses, now));
  std::size_t hits = 0;
  for (; now < trace.requests.size(); ++now) {
    HeldRequest request = hold_request(pool, trace.requests[now].blocks);
    hits += request.hits;
    release_tail_first(request.blocks);
  }
  return hits;
}

}  // namespace kvbm::tools
