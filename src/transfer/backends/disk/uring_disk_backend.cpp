// The io_uring disk backend: one engine thread owns the ring and everything it works with (I/O
// slots, staging buffers, registered files, the requests being run), keeps up to queue_depth
// I/Os and in_flight_bytes in flight across all requests, and reaps completions. Submitters
// only append to an inbox under a lock the engine takes once per wake-up, never per I/O. New
// requests wake it through an eventfd whose read is itself queued on the ring, so the thread
// only ever waits in io_uring_submit_and_wait, which also submits every SQE queued since.
#include <liburing.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <optional>
#include <span>
#include <thread>

#include "common/logger.hpp"
#include "common/make_error.hpp"
#include "transfer/backends/disk/disk_request.hpp"
#include "transfer/backends/disk/registered_files.hpp"

namespace kvbm {
namespace {

constexpr std::uint64_t kWakeTag = ~std::uint64_t{0};
// Distinct files with I/O in flight at once that go through the ring's file table; more go by
// descriptor. A transfer touches one or two.
constexpr unsigned kRegisteredFiles = 64;

class UringDiskBackend final : public DiskBackend {
 public:
  UringDiskBackend(io_uring ring, const DiskOptions& options)
      : DiskBackend(options.io_bytes),
        ring_(ring),
        max_in_flight_bytes_(options.in_flight_bytes),
        wake_fd_(::eventfd(0, EFD_CLOEXEC)),
        files_(ring_, kRegisteredFiles) {
    if (wake_fd_ < 0) {
      io_uring_queue_exit(&ring_);
      throw errno_error("eventfd", "io_uring wake-up", errno);
    }
    slots_.resize(options.queue_depth);
    for (std::size_t i = options.queue_depth; i-- > 0;) free_slots_.push_back(i);
    completed_.reserve(options.queue_depth + 1);
    // Staging for units that cannot go direct (unaligned memory, partial pages): one buffer per
    // I/O the byte bound lets in flight, registered so the kernel maps them once, not per I/O.
    const std::size_t staging_count =
        std::clamp<std::size_t>(options.in_flight_bytes / max_unit_bytes_, 1, options.queue_depth);
    staging_ = Region::allocate_system(staging_count * max_unit_bytes_);
    std::vector<iovec> buffers(staging_count);
    for (std::size_t i = 0; i < staging_count; ++i) {
      buffers[i] = {staging_->data() + i * max_unit_bytes_, max_unit_bytes_};
      free_staging_.push_back(static_cast<int>(staging_count - 1 - i));
    }
    const int registered = io_uring_register_buffers(&ring_, buffers.data(), static_cast<unsigned>(staging_count));
    staging_registered_ = registered == 0;
    if (!staging_registered_) {
      log().debug("io_uring buffer registration refused ({}): staged I/O maps its buffer per I/O",
                  std::strerror(-registered));
    }
    thread_ = std::thread([this] { run(); });
  }

  ~UringDiskBackend() override {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake();
    thread_.join();
    io_uring_queue_exit(&ring_);
    ::close(wake_fd_);
  }

  const char* name() const override { return "io_uring"; }

 private:
  void start(std::shared_ptr<DiskRequest> request) override {
    {
      std::lock_guard lock(mutex_);
      inbox_.push_back(std::move(request));
    }
    wake();
  }

  struct Slot {
    const DiskUnit* unit = nullptr;
    std::shared_ptr<DiskRequest> request;
    int staging = -1;     // staging buffer index, or -1: the I/O goes direct
    int file_index = -1;  // registered file index, or -1: by descriptor
  };
  // A unit taken from its request that waits for a staging buffer.
  struct Taken {
    const DiskUnit* unit = nullptr;
    std::shared_ptr<DiskRequest> request;
  };

  void wake() {
    const std::uint64_t one = 1;
    [[maybe_unused]] ssize_t written = ::write(wake_fd_, &one, sizeof one);
  }

  void arm_wake() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    io_uring_prep_read(sqe, wake_fd_, &wake_counter_, sizeof wake_counter_, 0);
    io_uring_sqe_set_data64(sqe, kWakeTag);
  }

  std::byte* staging_buffer(int index) const {
    return staging_->data() + static_cast<std::size_t>(index) * max_unit_bytes_;
  }

  // The next unit of the oldest request that has one left.
  std::optional<Taken> next_unit() {
    while (!active_.empty()) {
      if (const DiskUnit* unit = active_.front()->take()) return Taken{unit, active_.front()};
      active_.pop_front();
    }
    return std::nullopt;
  }

  // Queues SQEs for units while a slot is free and the byte bound allows (at least one I/O
  // always may start). A unit that needs staging waits, in order, for a staging buffer.
  void fill() {
    {
      std::lock_guard lock(mutex_);
      for (auto& request : inbox_) active_.push_back(std::move(request));
      inbox_.clear();
    }
    while (!free_slots_.empty() && (in_flight_bytes_ == 0 || in_flight_bytes_ < max_in_flight_bytes_)) {
      if (!waiting_) waiting_ = next_unit();
      if (!waiting_) return;
      const DiskUnit& unit = *waiting_->unit;
      int staging = -1;
      if (unit.needs_staging()) {
        if (free_staging_.empty()) return;
        staging = free_staging_.back();
        free_staging_.pop_back();
      }
      const std::size_t index = free_slots_.back();
      free_slots_.pop_back();
      Slot& slot = slots_[index];
      slot = {waiting_->unit, std::move(waiting_->request), staging, files_.acquire(*unit.file)};
      waiting_.reset();
      queue_io(slot, index);
      in_flight_bytes_ += unit.io_bytes();
    }
  }

  void queue_io(const Slot& slot, std::size_t index) {
    const DiskUnit& unit = *slot.unit;
    std::byte* address = prepare_io(unit, slot.staging >= 0 ? staging_buffer(slot.staging) : nullptr);
    const auto bytes = static_cast<unsigned>(unit.io_bytes());
    const int fd = slot.file_index >= 0 ? slot.file_index : unit.file->fd();
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (slot.staging >= 0 && staging_registered_) {
      if (unit.write) io_uring_prep_write_fixed(sqe, fd, address, bytes, unit.file_offset, slot.staging);
      else io_uring_prep_read_fixed(sqe, fd, address, bytes, unit.file_offset, slot.staging);
    } else if (unit.write) {
      io_uring_prep_write(sqe, fd, address, bytes, unit.file_offset);
    } else {
      io_uring_prep_read(sqe, fd, address, bytes, unit.file_offset);
    }
    if (slot.file_index >= 0) io_uring_sqe_set_flags(sqe, IOSQE_FIXED_FILE);
    io_uring_sqe_set_data64(sqe, index);
  }

  // Finishes each completed I/O: its file is unregistered (when it was the file's last) and its
  // buffers freed before its request hears of it.
  void complete(std::span<const std::pair<std::size_t, int>> done) {
    for (const auto& [index, result] : done) {
      Slot& slot = slots_[index];
      const DiskUnit& unit = *slot.unit;
      const Status status = finish_io(unit, slot.staging >= 0 ? staging_buffer(slot.staging) : nullptr, result);
      if (slot.file_index >= 0) files_.release(slot.file_index);
      if (slot.staging >= 0) free_staging_.push_back(slot.staging);
      in_flight_bytes_ -= unit.io_bytes();
      std::shared_ptr<DiskRequest> request = std::move(slot.request);
      slot = {};
      free_slots_.push_back(index);
      request->finish(status);
    }
  }

  void run() {
    arm_wake();
    for (;;) {
      fill();
      // One system call submits what fill() queued and waits for the first completion.
      const int submitted = io_uring_submit_and_wait(&ring_, 1);
      if (submitted == -EINTR) continue;
      if (submitted < 0 && submitted != -EBUSY) {
        log().error("io_uring_submit_and_wait failed: {}", std::strerror(-submitted));
        continue;
      }
      io_uring_cqe* cqe = nullptr;
      unsigned head = 0;
      unsigned seen = 0;
      bool rearm = false;
      completed_.clear();
      io_uring_for_each_cqe(&ring_, head, cqe) {
        ++seen;
        const std::uint64_t tag = io_uring_cqe_get_data64(cqe);
        if (tag == kWakeTag) rearm = true;
        else completed_.emplace_back(static_cast<std::size_t>(tag), cqe->res);
      }
      io_uring_cq_advance(&ring_, seen);
      complete(completed_);
      if (rearm) arm_wake();
      if (drained_and_stopping()) return;
    }
  }

  // On shutdown the engine first finishes every request it was given.
  bool drained_and_stopping() {
    const bool idle = active_.empty() && !waiting_ && free_slots_.size() == slots_.size();
    std::lock_guard lock(mutex_);
    return stopping_ && idle && inbox_.empty();
  }

  io_uring ring_;
  const std::size_t max_in_flight_bytes_;
  int wake_fd_;
  std::uint64_t wake_counter_ = 0;

  // The engine thread's alone.
  RegisteredFiles files_;
  std::vector<Slot> slots_;
  std::vector<std::size_t> free_slots_;
  RegionPtr staging_;
  bool staging_registered_ = false;
  std::vector<int> free_staging_;
  std::deque<std::shared_ptr<DiskRequest>> active_;
  std::optional<Taken> waiting_;
  std::size_t in_flight_bytes_ = 0;
  std::vector<std::pair<std::size_t, int>> completed_;

  std::mutex mutex_;  // guards inbox_ and stopping_
  std::vector<std::shared_ptr<DiskRequest>> inbox_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace

std::unique_ptr<DiskBackend> make_uring_disk_backend(const DiskOptions& options, std::string& why_not) {
  io_uring ring{};
  // One extra entry for the eventfd read that wakes the engine.
  const int result = io_uring_queue_init(static_cast<unsigned>(options.queue_depth + 1), &ring, 0);
  if (result < 0) {
    why_not = fmt::format("io_uring_queue_init failed: {}", std::strerror(-result));
    return nullptr;
  }
  return std::make_unique<UringDiskBackend>(ring, options);
}

}  // namespace kvbm
