#pragma once
// A fixed set of equal bounce buffers carved from one region (pinned when a GPU is present).
// acquire() never blocks and never allocates: when every buffer is taken, the request waits in
// FIFO order and is granted by the release() that frees a buffer.
#include <deque>
#include <functional>
#include <mutex>
#include <vector>

#include "transfer/engine/copy_op.hpp"

namespace kvbm {

class BouncePool {
 public:
  using Granted = std::function<void(Location buffer)>;

  BouncePool(RegionPtr region, std::size_t buffer_bytes, std::size_t count);

  // Calls `granted` with a free buffer, now (on this thread) or later (on a releasing thread).
  void acquire(Granted granted);
  void release(Location buffer);

  [[nodiscard]] std::size_t buffer_bytes() const { return buffer_bytes_; }
  [[nodiscard]] std::size_t count() const { return count_; }
  [[nodiscard]] StorageKind kind() const { return region_->kind(); }

 private:
  RegionPtr region_;
  std::size_t buffer_bytes_;
  std::size_t count_;
  std::mutex mutex_;
  std::vector<std::size_t> free_offsets_;
  std::deque<Granted> waiting_;
};

}  // namespace kvbm
