// Least recently released first, lowest priority first.
#include <list>
#include <map>
#include <unordered_map>

#include "kvbm/manager/eviction_policy.hpp"

namespace kvbm {
namespace {

class LruPolicy final : public EvictionPolicy {
 public:
  void add(BlockId block, SequenceHash, int priority) override {
    auto& queue = by_priority_[priority];
    queue.push_back(block);
    where_[block] = {priority, std::prev(queue.end())};
  }

  void remove(BlockId block) override {
    const auto found = where_.find(block);
    if (found == where_.end()) return;
    const auto queue = by_priority_.find(found->second.first);
    queue->second.erase(found->second.second);
    if (queue->second.empty()) by_priority_.erase(queue);
    where_.erase(found);
  }

  std::optional<BlockId> victim() override {
    if (by_priority_.empty()) return std::nullopt;
    return by_priority_.begin()->second.front();
  }

  std::string_view name() const override { return "lru"; }

 private:
  std::map<int, std::list<BlockId>> by_priority_;  // oldest release first; no empty lists
  std::unordered_map<BlockId, std::pair<int, std::list<BlockId>::iterator>> where_;
};

}  // namespace

std::unique_ptr<EvictionPolicy> make_lru_policy() { return std::make_unique<LruPolicy>(); }

}  // namespace kvbm
