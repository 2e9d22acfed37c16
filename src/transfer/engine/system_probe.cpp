#include "kvbm/transfer/system_probe.hpp"

#include <liburing.h>
#include <unistd.h>

#include <cstring>
#include <fmt/format.h>

#include "kvbm/common/error.hpp"
#include "kvbm/memory/region.hpp"

namespace kvbm {

ProbeResult probe_pinned_memory() {
  try {
    auto region = Region::allocate_pinned(kDirectIoAlignment);
    return {true, "cudaHostAlloc works"};
  } catch (const Error& error) {
    return {false, error.message()};
  }
}

ProbeResult probe_io_uring() {
  io_uring ring{};
  const int result = io_uring_queue_init(8, &ring, 0);
  if (result < 0) return {false, fmt::format("io_uring_queue_init failed: {}", std::strerror(-result))};
  io_uring_queue_exit(&ring);
  return {true, "io_uring_queue_init works"};
}

ProbeResult probe_o_direct(const std::string& directory) {
  try {
    DiskFileOptions options;
    options.directory = directory;
    auto region = Region::create_disk_file(kDirectIoAlignment, options);
    auto page = Region::allocate_system(kDirectIoAlignment);
    std::memset(page->data(), 0x5a, kDirectIoAlignment);
    if (::pwrite(region->fd(), page->data(), kDirectIoAlignment, 0) != static_cast<ssize_t>(kDirectIoAlignment)) {
      return {false, fmt::format("O_DIRECT write in '{}' failed: {}", directory, std::strerror(errno))};
    }
    return {true, fmt::format("O_DIRECT files work in '{}'", directory)};
  } catch (const Error& error) {
    return {false, error.message()};
  }
}

}  // namespace kvbm
