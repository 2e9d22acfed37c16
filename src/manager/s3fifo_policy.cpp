// S3-FIFO (Yang et al., "FIFO queues are all you need for cache eviction", SOSP 2023), over a
// tier's registered blocks. New blocks enter the small FIFO (10% of the tier); a block there
// that was used again moves on to the main FIFO, any other leaves and is remembered in the ghost
// list (as many hashes as the tier has blocks). A ghost registered again goes straight to main.
// Main reinserts a block used since it last passed (up to three uses remembered), else evicts
// it. Held blocks are passed over; only the lowest priority among the candidates is evicted.
#include <list>
#include <map>
#include <unordered_map>

#include "kvbm/manager/eviction_policy.hpp"

namespace kvbm {
namespace {

class S3FifoPolicy final : public EvictionPolicy {
 public:
  explicit S3FifoPolicy(std::size_t capacity)
      : small_cap_(std::max<std::size_t>(1, capacity / 10)), ghost_cap_(std::max<std::size_t>(1, capacity)) {}

  void add(BlockId block, SequenceHash, int priority) override {
    Entry& entry = entries_.at(block);
    entry.priority = priority;
    entry.candidate = true;
    ++priorities_[priority];
  }

  void remove(BlockId block) override {
    const auto found = entries_.find(block);
    if (found == entries_.end() || !found->second.candidate) return;
    found->second.candidate = false;
    if (--priorities_[found->second.priority] == 0) priorities_.erase(found->second.priority);
  }

  std::optional<BlockId> victim() override {
    if (priorities_.empty()) return std::nullopt;
    const int lowest = priorities_.begin()->first;
    // Each pass moves a block on (to the queue's tail or to main) or returns one; every block is
    // passed at most four times (three uses to spend, then out) before a candidate turns up.
    for (std::size_t steps = 0, limit = 5 * entries_.size() + 1; steps < limit; ++steps) {
      const bool from_small = !small_.empty() && (small_.size() >= small_cap_ || main_.empty());
      std::list<BlockId>& queue = from_small ? small_ : main_;
      const BlockId block = queue.front();
      Entry& entry = entries_.at(block);
      const bool evictable = entry.candidate && entry.priority == lowest;
      if (from_small) {
        if (entry.uses > 0) {
          entry.uses = 0;
          relocate(entry, main_, false);
        } else if (evictable) {
          return block;
        } else {
          relocate(entry, small_, true);
        }
      } else if (entry.uses > 0 || !evictable) {
        if (entry.uses > 0) --entry.uses;
        relocate(entry, main_, false);
      } else {
        return block;
      }
    }
    return std::nullopt;  // not reached: a candidate of the lowest priority exists
  }

  void on_lookup(SequenceHash hash) override {
    const auto found = by_hash_.find(hash);
    if (found == by_hash_.end()) return;
    Entry& entry = entries_.at(found->second);
    if (entry.uses < 3) ++entry.uses;
  }

  void on_register(BlockId block, SequenceHash hash) override {
    const bool ghost = ghosts_.erase(hash) > 0;  // its place in ghost_order_ ages out unheeded
    std::list<BlockId>& queue = ghost ? main_ : small_;
    entries_[block] = Entry{hash, queue.insert(queue.end(), block), !ghost, 0, 0, false};
    by_hash_[hash] = block;
  }

  void on_evict(BlockId block) override {
    const auto found = entries_.find(block);
    if (found == entries_.end()) return;
    Entry& entry = found->second;
    (entry.in_small ? small_ : main_).erase(entry.where);
    if (entry.in_small) remember(entry.hash);
    by_hash_.erase(entry.hash);
    entries_.erase(found);
  }

  std::string_view name() const override { return "s3fifo"; }

 private:
  struct Entry {
    SequenceHash hash = 0;
    std::list<BlockId>::iterator where;
    bool in_small = true;
    std::uint8_t uses = 0;  // since it last passed the head of its queue, at most 3
    int priority = 0;
    bool candidate = false;
  };

  // To the tail of `queue` (small_ or main_).
  void relocate(Entry& entry, std::list<BlockId>& queue, bool small) {
    queue.splice(queue.end(), entry.in_small ? small_ : main_, entry.where);
    entry.in_small = small;
  }

  void remember(SequenceHash hash) {
    ghosts_[hash] = ++ghost_serial_;
    ghost_order_.emplace_back(hash, ghost_serial_);
    while (ghost_order_.size() > ghost_cap_) {
      const auto [old, serial] = ghost_order_.front();
      const auto found = ghosts_.find(old);
      if (found != ghosts_.end() && found->second == serial) ghosts_.erase(found);  // not a later visit's
      ghost_order_.pop_front();
    }
  }

  const std::size_t small_cap_;
  const std::size_t ghost_cap_;
  std::unordered_map<BlockId, Entry> entries_;
  std::unordered_map<SequenceHash, BlockId> by_hash_;
  std::list<BlockId> small_, main_;  // oldest first
  std::unordered_map<SequenceHash, std::uint64_t> ghosts_;  // hash -> the visit that left it here
  std::list<std::pair<SequenceHash, std::uint64_t>> ghost_order_;  // oldest first; stale visits too
  std::uint64_t ghost_serial_ = 0;
  std::map<int, std::size_t> priorities_;  // candidates of each priority
};

}  // namespace

std::unique_ptr<EvictionPolicy> make_s3fifo_policy(std::size_t capacity) {
  return std::make_unique<S3FifoPolicy>(capacity);
}

}  // namespace kvbm
