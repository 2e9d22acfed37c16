// The fallback disk backend, for kernels or sandboxes that refuse io_uring: a pool of threads,
// each running pread/pwrite on one unit at a time. min(queue_depth, 32) threads bound the I/O in flight.
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "common/logger.hpp"
#include "common/make_error.hpp"
#include "common/thread_pool.hpp"
#include "transfer/backends/disk/disk_request.hpp"

namespace kvbm {
namespace {

class ThreadedDiskBackend final : public DiskBackend {
 public:
  ThreadedDiskBackend(std::size_t threads, std::size_t max_unit_bytes)
      : DiskBackend(max_unit_bytes), pool_(threads) {}

  const char* name() const override { return "threads"; }

 private:
  void start(std::shared_ptr<DiskRequest> request) override {
    // Threads drain the request, each stopping when no unit is left to take; no more of them
    // than it has units, so a one-unit request wakes one thread, not the pool.
    const std::size_t drainers = std::min(pool_.size(), request->unit_count());
    for (std::size_t i = 0; i < drainers; ++i) {
      pool_.post([this, request] { drain(*request); });
    }
  }

  void drain(DiskRequest& request) {
    thread_local RegionPtr staging;
    if (!staging || staging->size() < max_unit_bytes_) staging = Region::allocate_system(max_unit_bytes_);
    while (const DiskUnit* unit = request.take()) {
      std::byte* address = prepare_io(*unit, staging->data());
      const int fd = unit->file->fd();
      const auto offset = static_cast<off_t>(unit->file_offset);
      const ssize_t moved = unit->write ? ::pwrite(fd, address, unit->io_bytes(), offset)
                                        : ::pread(fd, address, unit->io_bytes(), offset);
      request.finish(finish_io(*unit, staging->data(), moved < 0 ? -errno : moved));
    }
  }

  ThreadPool pool_;
};

}  // namespace

std::unique_ptr<DiskBackend> make_uring_disk_backend(const DiskOptions& options, std::string& why_not);

std::unique_ptr<DiskBackend> make_disk_backend(const DiskOptions& options) {
  options.validate();
  const std::size_t threads = std::min(options.queue_depth, DiskOptions::kMaxThreads);
  if (options.backend != "threads") {
    std::string why_not;
    if (auto uring = make_uring_disk_backend(options, why_not)) return uring;
    if (options.backend == "io_uring") {
      throw make_error(ErrorCode::Unsupported, "KVBM_DISK_BACKEND=io_uring but {}", why_not);
    }
    log().warn("io_uring is not usable ({}); disk transfers fall back to {} pread/pwrite threads", why_not, threads);
  }
  return std::make_unique<ThreadedDiskBackend>(threads, options.io_bytes);
}

}  // namespace kvbm
