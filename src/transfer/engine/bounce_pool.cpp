#include "transfer/engine/bounce_pool.hpp"

#include "common/make_error.hpp"

namespace kvbm {

BouncePool::BouncePool(RegionPtr region, std::size_t buffer_bytes, std::size_t count)
    : region_(std::move(region)), buffer_bytes_(buffer_bytes), count_(count) {
  if (buffer_bytes == 0 || buffer_bytes % kDirectIoAlignment != 0 || count == 0 ||
      region_->size() < buffer_bytes * count) {
    throw make_error(ErrorCode::InvalidArgument,
                     "bounce pool of {} x {} bytes: buffers must be non-empty multiples of {} within a {}-byte region",
                     count, buffer_bytes, kDirectIoAlignment, region_->size());
  }
  for (std::size_t i = count; i-- > 0;) free_offsets_.push_back(i * buffer_bytes);
}

void BouncePool::acquire(Granted granted) {
  Location buffer{region_.get(), 0};
  {
    std::lock_guard lock(mutex_);
    if (free_offsets_.empty()) {
      waiting_.push_back(std::move(granted));
      return;
    }
    buffer.offset = free_offsets_.back();
    free_offsets_.pop_back();
  }
  granted(buffer);
}

void BouncePool::release(Location buffer) {
  Granted next;
  {
    std::lock_guard lock(mutex_);
    if (waiting_.empty()) {
      free_offsets_.push_back(buffer.offset);
      return;
    }
    next = std::move(waiting_.front());
    waiting_.pop_front();
  }
  // Handed straight to the next waiter, outside the lock.
  next(buffer);
}

}  // namespace kvbm
