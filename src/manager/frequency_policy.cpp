// Lowest priority first, then the hash asked for least often, then least recently released.
// Counts decay (halve every half_life lookups), so yesterday's favourite ages out.
#include <set>
#include <tuple>
#include <unordered_map>

#include "kvbm/manager/eviction_policy.hpp"

namespace kvbm {
namespace {

class FrequencyPolicy final : public EvictionPolicy {
 public:
  FrequencyPolicy(std::size_t tracked_hashes, std::uint64_t half_life)
      : tracked_hashes_(std::max<std::size_t>(1, tracked_hashes)), half_life_(std::max<std::uint64_t>(1, half_life)) {}

  void add(BlockId block, SequenceHash hash, int priority) override {
    const auto count = counts_.find(hash);
    const Key key{priority, count == counts_.end() ? 0 : count->second, next_release_++, block};
    order_.insert(key);
    candidates_[block] = Candidate{key, hash};
  }

  void remove(BlockId block) override {
    const auto found = candidates_.find(block);
    if (found == candidates_.end()) return;
    order_.erase(found->second.key);
    candidates_.erase(found);
  }

  std::optional<BlockId> victim() const override {
    if (order_.empty()) return std::nullopt;
    return std::get<3>(*order_.begin());
  }

  void on_lookup(SequenceHash hash) override {
    ++counts_[hash];
    if (++lookups_ % half_life_ == 0) age();
    if (counts_.size() > tracked_hashes_) forget_coldest();
  }

  std::string_view name() const override { return "frequency"; }

 private:
  using Key = std::tuple<int, std::uint32_t, std::uint64_t, BlockId>;  // priority, count, release order, block
  struct Candidate {
    Key key;
    SequenceHash hash;
  };

  // Halves every count and re-sorts the candidates by their new counts.
  void age() {
    for (auto it = counts_.begin(); it != counts_.end();) {
      it->second /= 2;
      it = it->second == 0 ? counts_.erase(it) : std::next(it);
    }
    order_.clear();
    for (auto& [block, candidate] : candidates_) {
      const auto count = counts_.find(candidate.hash);
      std::get<1>(candidate.key) = count == counts_.end() ? 0 : count->second;
      order_.insert(candidate.key);
    }
  }

  // Drops the counts of hashes asked for once; if every hash was asked for more often, ages.
  void forget_coldest() {
    const std::size_t before = counts_.size();
    std::erase_if(counts_, [](const auto& entry) { return entry.second <= 1; });
    if (counts_.size() == before) age();
  }

  const std::size_t tracked_hashes_;
  const std::uint64_t half_life_;
  std::unordered_map<SequenceHash, std::uint32_t> counts_;
  std::set<Key> order_;
  std::unordered_map<BlockId, Candidate> candidates_;
  std::uint64_t next_release_ = 0;
  std::uint64_t lookups_ = 0;
};

}  // namespace

std::unique_ptr<EvictionPolicy> make_frequency_policy(std::size_t tracked_hashes, std::uint64_t half_life) {
  return std::make_unique<FrequencyPolicy>(tracked_hashes, half_life);
}

}  // namespace kvbm
