// Lowest priority first, then the hash asked for least often, then least recently released.
// Counts decay (halve every half_life lookups), so yesterday's favourite ages out.
#include <set>
#include <tuple>
#include <unordered_map>

#include "kvbm/manager/eviction_policy.hpp"
#include "manager/decaying_counts.hpp"

namespace kvbm {
namespace {

class FrequencyPolicy final : public EvictionPolicy {
 public:
  FrequencyPolicy(std::size_t tracked_hashes, std::uint64_t half_life) : counts_(tracked_hashes, half_life) {}

  void add(BlockId block, SequenceHash hash, int priority) override {
    const Key key{priority, counts_.get(hash), next_release_++, block};
    order_.insert(key);
    candidates_[block] = Candidate{key, hash};
  }

  void remove(BlockId block) override {
    const auto found = candidates_.find(block);
    if (found == candidates_.end()) return;
    order_.erase(found->second.key);
    candidates_.erase(found);
  }

  std::optional<BlockId> victim() override {
    if (order_.empty()) return std::nullopt;
    return std::get<3>(*order_.begin());
  }

  void on_lookup(SequenceHash hash) override {
    if (counts_.count(hash)) rekey();
  }

  std::string_view name() const override { return "frequency"; }

 private:
  using Key = std::tuple<int, std::uint32_t, std::uint64_t, BlockId>;  // priority, count, release order, block
  struct Candidate {
    Key key;
    SequenceHash hash;
  };

  // The counts changed under the candidates: sort them again by their new counts.
  void rekey() {
    order_.clear();
    for (auto& [block, candidate] : candidates_) {
      std::get<1>(candidate.key) = counts_.get(candidate.hash);
      order_.insert(candidate.key);
    }
  }

  DecayingCounts counts_;
  std::set<Key> order_;
  std::unordered_map<BlockId, Candidate> candidates_;
  std::uint64_t next_release_ = 0;
};

}  // namespace

std::unique_ptr<EvictionPolicy> make_frequency_policy(std::size_t tracked_hashes, std::uint64_t half_life) {
  return std::make_unique<FrequencyPolicy>(tracked_hashes, half_life);
}

}  // namespace kvbm
