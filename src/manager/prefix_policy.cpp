// Prefix-aware eviction: leaves of the prefix tree first, least recently released among them.
// LRU already drops a request's tail before its head (a request releases tail first); this
// keeps the rule when requests interleave: a prefix that others extend is never cut in the middle.
#include "kvbm/manager/eviction_policy.hpp"
#include "manager/prefix_candidates.hpp"

namespace kvbm {
namespace {

class PrefixPolicy final : public EvictionPolicy {
 public:
  void add(BlockId block, SequenceHash, int priority) override { tree_.add(block, priority, 0.0); }
  void remove(BlockId block) override { tree_.remove(block); }
  std::optional<BlockId> victim() override { return tree_.first(); }
  void on_request(std::span<const SequenceHash> hashes) override { tree_.learn(hashes); }
  void on_register(BlockId block, SequenceHash hash) override { tree_.registered(block, hash); }
  void on_evict(BlockId block) override { tree_.evicted(block); }
  std::string_view name() const override { return "prefix"; }

 private:
  PrefixCandidates tree_;
};

}  // namespace

std::unique_ptr<EvictionPolicy> make_prefix_policy() { return std::make_unique<PrefixPolicy>(); }

}  // namespace kvbm
