#include "manager/offload_queue.hpp"

namespace kvbm {

std::size_t OffloadQueue::push(OffloadEntry entry) {
  std::lock_guard lock(mutex_);
  const std::size_t dropped = push_locked(std::move(entry));
  changed_.notify_all();
  return dropped;
}

std::size_t OffloadQueue::push_all(std::vector<OffloadEntry> entries) {
  std::lock_guard lock(mutex_);
  std::size_t dropped = 0;
  for (OffloadEntry& entry : entries) dropped += push_locked(std::move(entry));
  changed_.notify_all();
  return dropped;
}

std::size_t OffloadQueue::push_locked(OffloadEntry entry) {
  std::size_t dropped = 0;
  if (waiting_.size() >= capacity_) {  // capacity_ > 0: something waits
    const auto lowest = std::prev(waiting_.end());
    if (-lowest->first.first >= entry.priority) return 1;
    waiting_.erase(lowest);
    dropped = 1;
  }
  waiting_.emplace(Key{-entry.priority, arrivals_++}, std::move(entry));
  return dropped;
}

std::vector<OffloadEntry> OffloadQueue::take(std::size_t most) {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return closed_ || !waiting_.empty(); });
  std::vector<OffloadEntry> batch;
  while (!waiting_.empty() && batch.size() < most && (batch.empty() || waiting_.begin()->second.from == batch.front().from)) {
    batch.push_back(std::move(waiting_.begin()->second));
    waiting_.erase(waiting_.begin());
  }
  running_ += batch.size();
  return batch;
}

void OffloadQueue::finished(std::size_t count) {
  std::lock_guard lock(mutex_);
  running_ -= count;
  changed_.notify_all();
}

void OffloadQueue::wait_idle() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return waiting_.empty() && running_ == 0; });
}

void OffloadQueue::close() {
  std::lock_guard lock(mutex_);
  closed_ = true;
  changed_.notify_all();
}

std::size_t OffloadQueue::depth() const {
  std::lock_guard lock(mutex_);
  return waiting_.size() + running_;
}

}  // namespace kvbm
