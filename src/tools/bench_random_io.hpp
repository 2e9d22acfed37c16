#pragma once
// The disk ceiling for scattered blocks, what fio measures with random O_DIRECT I/O at a queue
// depth: `kvbm bench`'s yardstick for small blocks, where one sequential transfer of the same
// bytes is not what the disk can do for scattered ones.
#include <cstddef>
#include <span>

#include "kvbm/layout/layout.hpp"

namespace kvbm::tools {

// GB/s of reading (or, with `write`, writing) the given blocks of `disk` (a one-region layout
// on a disk file) in a random order, one O_DIRECT I/O per block (each rounded up to the 4 KiB
// alignment), `queue_depth` in flight through io_uring, from aligned host buffers. Throws Io
// naming the file on an I/O error, Unsupported where io_uring is refused.
[[nodiscard]] double random_io_gbps(const Layout& disk, std::span<const std::size_t> blocks, bool write,
                                    std::size_t queue_depth);

struct RandomIoCeiling {
  double gbps = 0;
  std::size_t queue_depth = 0;
};

// The disk's best: random_io_gbps at queue depths 32 to 512 (and `also_depth`, the backend's),
// the fastest of them. A disk's best depth depends on the block size; a fixed depth would
// understate what scattered small blocks can get.
[[nodiscard]] RandomIoCeiling best_random_io(const Layout& disk, std::span<const std::size_t> blocks, bool write,
                                             std::size_t also_depth);

}  // namespace kvbm::tools
