#pragma once
#include <algorithm>
#include <bit>
#include <map>
#include <mutex>
#include <utility>

#include "platform/cuda_runtime.hpp"

namespace kvbm::cuda {

// Pinned host memory for descriptor lists, reused across transfers (they are uploaded with
// cudaMemcpyAsync, which needs pinned memory to stay asynchronous).
class PinnedScratch {
 public:
  ~PinnedScratch() {
    for (auto& [bytes, ptr] : free_) host_free(ptr);
  }
  std::pair<std::size_t, void*> take(std::size_t bytes) {
    std::lock_guard lock(mutex_);
    auto it = free_.lower_bound(bytes);
    if (it != free_.end()) {
      auto found = *it;
      free_.erase(it);
      return found;
    }
    const std::size_t rounded = std::max<std::size_t>(4096, std::bit_ceil(bytes));
    return {rounded, host_alloc(rounded)};
  }
  void give(std::pair<std::size_t, void*> buffer) {
    std::lock_guard lock(mutex_);
    free_.insert(buffer);
  }

 private:
  std::mutex mutex_;
  std::multimap<std::size_t, void*> free_;
};

}  // namespace kvbm::cuda
