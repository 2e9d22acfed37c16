// W-TinyLFU (Einziger, Friedman and Manes, "TinyLFU: A Highly Efficient Cache Admission
// Policy"; as in Caffeine), over a tier's registered blocks. A new block enters the window, an
// LRU of 1% of the tier. Pushed out of the window, it joins the main area's probation segment on
// trial. When room is needed, the oldest block on trial duels the least recent probation block:
// the one the sketch says was requested less often goes. A probation block used again moves to
// the protected segment (80% of main), whose overflow goes back to probation. Orders are by
// release (held blocks are never candidates); lower priority goes first.
#include <list>
#include <set>
#include <tuple>
#include <unordered_map>

#include "kvbm/manager/eviction_policy.hpp"
#include "manager/count_min_sketch.hpp"

namespace kvbm {
namespace {

class TinyLfuPolicy final : public EvictionPolicy {
 public:
  explicit TinyLfuPolicy(std::size_t capacity)
      : capacity_(capacity),
        window_cap_(std::max<std::size_t>(1, capacity / 100)),
        protected_cap_((capacity - std::min(capacity, window_cap_)) * 4 / 5),
        sketch_(capacity) {}

  void add(BlockId block, SequenceHash, int priority) override {
    Entry& entry = entries_.at(block);
    entry.key = Key{priority, ++releases_, block};
    candidates(entry).insert(*entry.key);
  }

  void remove(BlockId block) override {
    const auto found = entries_.find(block);
    if (found == entries_.end() || !found->second.key) return;
    candidates(found->second).erase(*found->second.key);
    found->second.key.reset();
  }

  std::optional<BlockId> victim() override {
    // Only candidates of the lowest priority present take part.
    std::optional<int> lowest;
    for (const std::set<Key>* set : {&window_, &trial_, &probation_, &protected_}) {
      if (!set->empty() && (!lowest || std::get<0>(*set->begin()) < *lowest)) lowest = std::get<0>(*set->begin());
    }
    if (!lowest) return std::nullopt;
    const auto first = [&](const std::set<Key>& set) -> std::optional<Key> {
      if (set.empty() || std::get<0>(*set.begin()) != *lowest) return std::nullopt;
      return *set.begin();
    };
    const std::optional<Key> trial = first(trial_);
    std::optional<Key> main = first(probation_);
    if (!main) main = first(protected_);
    if (trial && main) {
      if (frequency(std::get<2>(*trial)) > frequency(std::get<2>(*main))) {
        move(entries_.at(std::get<2>(*trial)), Segment::Probation, false);  // admitted to main
        return std::get<2>(*main);
      }
      return std::get<2>(*trial);
    }
    if (trial) return std::get<2>(*trial);
    if (main) return std::get<2>(*main);
    return std::get<2>(*first(window_));
  }

  void on_request(std::span<const SequenceHash> hashes) override {
    for (SequenceHash hash : hashes) sketch_.increment(hash);
  }

  void on_lookup(SequenceHash hash) override {
    const auto found = by_hash_.find(hash);
    if (found == by_hash_.end()) return;
    Entry& entry = entries_.at(found->second);
    switch (entry.segment) {
      case Segment::Window: window_order_.splice(window_order_.end(), window_order_, entry.order); break;
      case Segment::Probation:
        move(entry, Segment::Protected, false);
        while (protected_order_.size() > protected_cap_) move(entries_.at(protected_order_.front()), Segment::Probation, false);
        break;
      case Segment::Protected: protected_order_.splice(protected_order_.end(), protected_order_, entry.order); break;
    }
  }

  void on_register(BlockId block, SequenceHash hash) override {
    Entry& entry = entries_[block];
    entry = Entry{block, hash, Segment::Window, false, window_order_.insert(window_order_.end(), block), std::nullopt};
    by_hash_[hash] = block;
    // Out of the window: on trial once the tier is full (it must then win a duel to stay),
    // straight into probation while there is room, as in Caffeine.
    const bool full = entries_.size() >= capacity_;
    while (window_order_.size() > window_cap_) move(entries_.at(window_order_.front()), Segment::Probation, full);
  }

  void on_evict(BlockId block) override {
    const auto found = entries_.find(block);
    if (found == entries_.end()) return;
    Entry& entry = found->second;
    if (entry.key) candidates(entry).erase(*entry.key);
    if (entry.segment == Segment::Window) window_order_.erase(entry.order);
    if (entry.segment == Segment::Protected) protected_order_.erase(entry.order);
    by_hash_.erase(entry.hash);
    entries_.erase(found);
  }

  bool admit(SequenceHash hash) override {
    std::optional<Key> main = earliest(probation_);
    if (!main) main = earliest(protected_);
    if (!main) main = earliest(window_);
    return !main || sketch_.estimate(hash) > frequency(std::get<2>(*main));
  }

  std::string_view name() const override { return "tinylfu"; }

 private:
  enum class Segment { Window, Probation, Protected };
  using Key = std::tuple<int, std::uint64_t, BlockId>;  // priority, release order, block
  struct Entry {
    BlockId block = 0;
    SequenceHash hash = 0;
    Segment segment = Segment::Window;
    bool trial = false;                   // in probation, not yet through a duel
    std::list<BlockId>::iterator order;   // in window_order_ or protected_order_
    std::optional<Key> key;               // set while a candidate
  };

  static std::optional<Key> earliest(const std::set<Key>& set) {
    if (set.empty()) return std::nullopt;
    return *set.begin();
  }

  std::set<Key>& candidates(const Entry& entry) {
    switch (entry.segment) {
      case Segment::Window: return window_;
      case Segment::Probation: return entry.trial ? trial_ : probation_;
      case Segment::Protected: return protected_;
    }
    return window_;
  }

  std::uint32_t frequency(BlockId block) const { return sketch_.estimate(entries_.at(block).hash); }

  // Moves an entry to another segment (or off trial), its candidacy with it.
  void move(Entry& entry, Segment to, bool trial) {
    if (entry.key) candidates(entry).erase(*entry.key);
    if (entry.segment == Segment::Window) window_order_.erase(entry.order);
    if (entry.segment == Segment::Protected) protected_order_.erase(entry.order);
    entry.segment = to;
    entry.trial = trial;
    if (to == Segment::Protected) entry.order = protected_order_.insert(protected_order_.end(), entry.block);
    if (to == Segment::Window) entry.order = window_order_.insert(window_order_.end(), entry.block);
    if (entry.key) candidates(entry).insert(*entry.key);
  }

  const std::size_t capacity_;
  const std::size_t window_cap_;
  const std::size_t protected_cap_;
  CountMinSketch sketch_;
  std::unordered_map<BlockId, Entry> entries_;
  std::unordered_map<SequenceHash, BlockId> by_hash_;
  std::list<BlockId> window_order_;     // every window block, least recent first
  std::list<BlockId> protected_order_;  // every protected block, least recent first
  std::set<Key> window_, trial_, probation_, protected_;  // candidates of each
  std::uint64_t releases_ = 0;
};

}  // namespace

std::unique_ptr<EvictionPolicy> make_tinylfu_policy(std::size_t capacity) {
  return std::make_unique<TinyLfuPolicy>(capacity);
}

}  // namespace kvbm
