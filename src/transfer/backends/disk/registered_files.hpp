#pragma once
// The files an io_uring engine has I/O in flight to, registered with its ring: a registered
// file spares the kernel looking up and reference-counting the descriptor on every I/O.
// A file is registered by its first I/O in flight and unregistered when its last one finishes,
// before that I/O's request is told: a Region outlives its transfers but not longer, so a
// registration never outlives the Region it was made for, and a new Region at the same address
// can never meet a stale one.
#include <liburing.h>

#include <unordered_map>
#include <vector>

#include "kvbm/memory/region.hpp"

namespace kvbm {

class RegisteredFiles {
 public:
  // Registers an empty table of `capacity` files; where the kernel refuses it, every file goes
  // by its descriptor instead (reason() says why).
  RegisteredFiles(io_uring& ring, unsigned capacity);

  // The file's table index, registering it for its first I/O in flight; -1 when the table is
  // full or not available, and the I/O goes by descriptor.
  [[nodiscard]] int acquire(const Region& file);
  // One I/O to the file at `index` (acquire's result, >= 0) has finished.
  void release(int index);

  [[nodiscard]] bool enabled() const { return enabled_; }

 private:
  struct Entry {
    const Region* file = nullptr;
    std::size_t in_flight = 0;
  };

  io_uring& ring_;
  bool enabled_ = false;
  std::vector<Entry> entries_;
  std::vector<int> free_;
  std::unordered_map<const Region*, int> index_of_;
};

}  // namespace kvbm
