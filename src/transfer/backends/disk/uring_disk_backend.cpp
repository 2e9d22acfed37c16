// The io_uring disk backend: one engine thread owns the ring, keeps up to queue_depth I/Os in
// flight across all requests, and reaps completions. New requests wake it through an eventfd
// whose read is itself queued on the ring, so the thread only ever waits in io_uring_wait_cqe.
#include <liburing.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>
#include <deque>
#include <span>
#include <thread>

#include "common/logger.hpp"
#include "transfer/backends/disk/disk_request.hpp"

namespace kvbm {
namespace {

constexpr std::uint64_t kWakeTag = ~std::uint64_t{0};

class UringDiskBackend final : public DiskBackend {
 public:
  UringDiskBackend(io_uring ring, std::size_t queue_depth, std::size_t max_unit_bytes)
      : ring_(ring), wake_fd_(::eventfd(0, EFD_CLOEXEC)) {
    if (wake_fd_ < 0) {
      io_uring_queue_exit(&ring_);
      throw errno_error("eventfd", "io_uring wake-up", errno);
    }
    slots_.reserve(queue_depth);
    completed_.reserve(queue_depth + 1);
    for (std::size_t i = 0; i < queue_depth; ++i) {
      slots_.push_back(std::make_unique<Slot>(max_unit_bytes));
      free_slots_.push_back(i);
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

  void submit(std::shared_ptr<DiskRequest> request) override {
    if (request->empty()) {
      request->complete_empty();
      return;
    }
    {
      std::lock_guard lock(mutex_);
      pending_.push_back(std::move(request));
    }
    wake();
  }

  const char* name() const override { return "io_uring"; }

 private:
  struct Slot {
    explicit Slot(std::size_t bytes) : staging(Region::allocate_system(bytes)) {}
    RegionPtr staging;
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

  // Starts units from pending requests while slots are free. Slots are claimed under the lock;
  // staging copies and SQEs (the ring is this thread's alone) are made outside it, so
  // submitters never wait behind a memcpy.
  void fill() {
    std::vector<std::size_t> claimed;
    {
      std::lock_guard lock(mutex_);
      while (!free_slots_.empty() && !pending_.empty()) {
        const std::shared_ptr<DiskRequest>& request = pending_.front();
        const DiskUnit* unit = request->take();
        if (unit == nullptr) {
          pending_.pop_front();
          continue;
        }
        const std::size_t index = free_slots_.back();
        free_slots_.pop_back();
        slots_[index]->unit = unit;
        slots_[index]->request = request;
        claimed.push_back(index);
      }
    }
    for (const std::size_t index : claimed) {
      const DiskUnit* unit = slots_[index]->unit;
      std::byte* address = prepare_io(*unit, slots_[index]->staging->data());
      io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
      if (unit->write) {
        io_uring_prep_write(sqe, unit->file->fd(), address, static_cast<unsigned>(unit->io_bytes()), unit->file_offset);
      } else {
        io_uring_prep_read(sqe, unit->file->fd(), address, static_cast<unsigned>(unit->io_bytes()), unit->file_offset);
      }
      io_uring_sqe_set_data64(sqe, index);
    }
  }

  // Finishes the I/O of each completed slot, then frees the slots under one lock.
  void complete(std::span<const std::pair<std::size_t, int>> done) {
    for (const auto& [index, result] : done) {
      Slot& slot = *slots_[index];
      const Status status = finish_io(*slot.unit, slot.staging->data(), result);
      std::shared_ptr<DiskRequest> request = std::move(slot.request);
      request->finish(status);
    }
    std::lock_guard lock(mutex_);
    for (const auto& [index, result] : done) free_slots_.push_back(index);
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
    std::lock_guard lock(mutex_);
    return stopping_ && pending_.empty() && free_slots_.size() == slots_.size();
  }

  io_uring ring_;
  int wake_fd_;
  std::uint64_t wake_counter_ = 0;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<std::size_t> free_slots_;
  std::vector<std::pair<std::size_t, int>> completed_;  // the engine thread's, reused
  std::mutex mutex_;
  std::deque<std::shared_ptr<DiskRequest>> pending_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace

std::unique_ptr<DiskBackend> make_uring_disk_backend(std::size_t queue_depth, std::size_t max_unit_bytes,
                                                     std::string& why_not) {
  io_uring ring{};
  // One extra entry for the eventfd read that wakes the engine.
  const int result = io_uring_queue_init(static_cast<unsigned>(queue_depth + 1), &ring, 0);
  if (result < 0) {
    why_not = fmt::format("io_uring_queue_init failed: {}", std::strerror(-result));
    return nullptr;
  }
  return std::make_unique<UringDiskBackend>(ring, queue_depth, max_unit_bytes);
}

}  // namespace kvbm
