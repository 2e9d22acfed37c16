#include "transfer/backends/disk/registered_files.hpp"

#include <cstring>

#include "common/logger.hpp"

namespace kvbm {

RegisteredFiles::RegisteredFiles(io_uring& ring, unsigned capacity) : ring_(ring) {
  const int result = io_uring_register_files_sparse(&ring_, capacity);
  if (result < 0) {
    log().debug("io_uring file registration refused ({}): disk I/O goes by descriptor", std::strerror(-result));
    return;
  }
  enabled_ = true;
  entries_.resize(capacity);
  for (unsigned i = capacity; i-- > 0;) free_.push_back(static_cast<int>(i));
  index_of_.reserve(capacity);
}

int RegisteredFiles::acquire(const Region& file) {
  if (!enabled_) return -1;
  if (const auto found = index_of_.find(&file); found != index_of_.end()) {
    ++entries_[static_cast<std::size_t>(found->second)].in_flight;
    return found->second;
  }
  if (free_.empty()) return -1;
  const int index = free_.back();
  int fd = file.fd();
  if (io_uring_register_files_update(&ring_, static_cast<unsigned>(index), &fd, 1) != 1) return -1;
  free_.pop_back();
  entries_[static_cast<std::size_t>(index)] = {&file, 1};
  index_of_.emplace(&file, index);
  return index;
}

void RegisteredFiles::release(int index) {
  Entry& entry = entries_.at(static_cast<std::size_t>(index));
  if (--entry.in_flight != 0) return;
  int none = -1;
  // Failing to clear the slot leaves the old file referenced by the ring, never reachable again
  // (the index is not reused): a leak of one table entry, not a wrong file.
  const bool cleared = io_uring_register_files_update(&ring_, static_cast<unsigned>(index), &none, 1) == 1;
  if (!cleared) log().warn("io_uring: could not unregister file '{}' (table slot {})", entry.file->path(), index);
  index_of_.erase(entry.file);
  entry = {};
  if (cleared) free_.push_back(index);
}

}  // namespace kvbm
