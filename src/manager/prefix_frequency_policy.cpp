// Leaves of the prefix tree first, ordered by a decayed count of the requests that named each
// block: every block of every request counts (not only the prefix a tier happened to hold), and
// a count halves every half_life requests. Kept as log2 of sum(2^(t / half_life)) over the
// requests t that named the block, a rank fixed between a block's requests: two blocks not
// requested keep their order as time passes, so an ordered set holds the candidates.
// No admission filter: a block kept off a lower tier breaks every chain that runs through it
// (a prefix hit stops at its first missing block), which cost the agentic workload three times
// LRU's misses when this policy refused blocks ranked below the victim (see docs/manager.md).
#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "kvbm/manager/eviction_policy.hpp"
#include "manager/prefix_candidates.hpp"

namespace kvbm {
namespace {

class PrefixFrequencyPolicy final : public EvictionPolicy {
 public:
  explicit PrefixFrequencyPolicy(double half_life_requests) : per_request_(1.0 / std::max(1.0, half_life_requests)) {}

  void add(BlockId block, SequenceHash hash, int priority) override { tree_.add(block, priority, rank_of(hash)); }
  void remove(BlockId block) override { tree_.remove(block); }
  std::optional<BlockId> victim() override { return tree_.first(); }

  void on_request(std::span<const SequenceHash> hashes) override {
    tree_.learn(hashes);
    ++requests_;
    const double now = static_cast<double>(requests_) * per_request_;
    for (SequenceHash hash : hashes) {
      auto [entry, fresh] = ranks_.try_emplace(hash, now);
      if (!fresh) {  // log2(2^old + 2^now), kept exact where one term dwarfs the other
        const double high = std::max(entry->second, now);
        entry->second = high + std::log2(std::exp2(entry->second - high) + std::exp2(now - high));
      }
      if (const auto block = tree_.block_of(hash)) tree_.rerank(*block, entry->second);
    }
    if (ranks_.size() > kMaxTracked) forget(now);
  }

  void on_register(BlockId block, SequenceHash hash) override { tree_.registered(block, hash); }
  void on_evict(BlockId block) override { tree_.evicted(block); }

  std::string_view name() const override { return "prefix-frequency"; }

 private:
  static constexpr std::size_t kMaxTracked = std::size_t{1} << 22;

  [[nodiscard]] double rank_of(SequenceHash hash) const {
    const auto found = ranks_.find(hash);
    return found == ranks_.end() ? -1e300 : found->second;
  }

  // Drops the ranks that decayed the most (below a millionth of one fresh request), then, if
  // that was not enough, the lower half: registered blocks among them rank as never requested.
  void forget(double now) {
    std::erase_if(ranks_, [&](const auto& entry) { return entry.second < now - 20; });
    if (ranks_.size() <= kMaxTracked / 2) return;
    std::vector<double> values;
    values.reserve(ranks_.size());
    for (const auto& [hash, rank] : ranks_) values.push_back(rank);
    std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(values.size() / 2), values.end());
    const double median = values[values.size() / 2];
    std::erase_if(ranks_, [&](const auto& entry) { return entry.second < median; });
  }

  const double per_request_;
  std::uint64_t requests_ = 0;
  std::unordered_map<SequenceHash, double> ranks_;
  PrefixCandidates tree_;
};

}  // namespace

std::unique_ptr<EvictionPolicy> make_prefix_frequency_policy(double half_life_requests) {
  return std::make_unique<PrefixFrequencyPolicy>(half_life_requests);
}

}  // namespace kvbm
