#pragma once
// The block manager's write-through queue: blocks registered in a tier waiting to be copied to
// the next tier down. Highest priority first, first come first served within a priority;
// bounded, shedding the lowest priority when full. Each entry holds its source block, so it is
// not evicted while it waits.
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include "kvbm/manager/tier_pool.hpp"

namespace kvbm {

struct OffloadEntry {
  Tier from;
  BlockHandle source;
  SequenceHash hash;
  int priority;
};

class OffloadQueue {
 public:
  explicit OffloadQueue(std::size_t capacity) : capacity_(capacity) {}

  // Queues `entry`; when full, displaces the lowest-priority waiting entry if `entry`'s
  // priority is higher. Returns how many blocks were dropped (0 or 1).
  std::size_t push(OffloadEntry entry);
  // Queues every entry under one lock: no batch is taken between two of them, so the order in
  // which the worker meets them does not depend on timing. Returns the blocks dropped.
  std::size_t push_all(std::vector<OffloadEntry> entries);
  // Waits for entries (or close()) and takes up to `most` consecutive ones from the same tier,
  // counted as running until finished() is called with their number. Empty after close().
  [[nodiscard]] std::vector<OffloadEntry> take(std::size_t most);
  void finished(std::size_t count);
  // Returns once nothing waits or runs.
  void wait_idle();
  void close();
  [[nodiscard]] std::size_t depth() const;  // waiting + running

 private:
  using Key = std::pair<int, std::uint64_t>;  // (-priority, arrival)
  std::size_t push_locked(OffloadEntry entry);
  const std::size_t capacity_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::map<Key, OffloadEntry> waiting_;
  std::uint64_t arrivals_ = 0;
  std::size_t running_ = 0;
  bool closed_ = false;
};

}  // namespace kvbm
