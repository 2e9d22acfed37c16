#pragma once
// The caller's side of an asynchronous transfer. Move-only; its destructor waits for the
// hardware to finish, so buffers cannot be freed under a running copy.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "kvbm/common/error.hpp"

namespace kvbm {

using CompletionCallback = std::function<void(const Status&)>;

// Shared between a handle and the executors that finish the work. Completes exactly once.
// Waiters see the outcome only after the callbacks registered before completion have run, so
// what a callback did is visible once wait() returns. Those callbacks may wait on (or destroy
// a handle of) the same state: on the completing thread the outcome is visible at once.
class CompletionState {
 public:
  // How long wait() polls (yielding) before it sleeps (TransferConfig::wait_spin_us).
  static constexpr std::chrono::microseconds kDefaultPollBeforeSleep{10000};
  explicit CompletionState(std::chrono::microseconds poll_before_sleep = kDefaultPollBeforeSleep)
      : poll_before_sleep_(poll_before_sleep) {}

  void complete(Status status);
  // The last parts of the work are under way: sleeping waiters wake now and poll for the end,
  // so that the end does not also cost them a wake-up (tens of microseconds on a VM). Optional.
  void end_is_near();
  [[nodiscard]] Status wait();
  [[nodiscard]] std::optional<Status> wait_for(std::chrono::nanoseconds timeout);
  [[nodiscard]] std::optional<Status> poll();
  // Runs `callback` on completion (at once, on this thread, if already complete).
  void on_complete(CompletionCallback callback);
  // How many times a waiter has gone to sleep on the condition variable (after polling); for
  // tests that order events after a waiter sleeps.
  [[nodiscard]] std::uint64_t sleeps();

 private:
  [[nodiscard]] bool visible() const;  // caller holds mutex_

  const std::chrono::microseconds poll_before_sleep_;
  std::mutex mutex_;
  std::condition_variable done_;
  std::atomic<std::uint64_t> version_{0};  // bumped once settled, for wait()'s poll
  std::optional<Status> status_;
  bool settled_ = false;               // the callbacks have run: waiters may return
  bool end_is_near_ = false;           // see end_is_near()
  std::thread::id completing_thread_;  // runs the callbacks between status_ and settled_
  std::uint64_t sleeps_ = 0;           // see sleeps()
  std::vector<CompletionCallback> callbacks_;
};

class [[nodiscard]] TransferHandle {
 public:
  explicit TransferHandle(std::shared_ptr<CompletionState> state) : state_(std::move(state)) {}
  // A handle that is already complete with `status`.
  static TransferHandle completed(Status status);

  TransferHandle(TransferHandle&&) noexcept = default;
  TransferHandle& operator=(TransferHandle&& other) noexcept;
  TransferHandle(const TransferHandle&) = delete;
  TransferHandle& operator=(const TransferHandle&) = delete;
  ~TransferHandle();

  // Blocks until the transfer ends and its callbacks have run; returns its outcome.
  [[nodiscard]] Status wait() { return state_->wait(); }
  // nullopt when the transfer is still running after `timeout`.
  template <typename Rep, typename Period>
  [[nodiscard]] std::optional<Status> wait_for(std::chrono::duration<Rep, Period> timeout) {
    return state_->wait_for(std::chrono::duration_cast<std::chrono::nanoseconds>(timeout));
  }
  // nullopt while running; never blocks.
  [[nodiscard]] std::optional<Status> poll() { return state_->poll(); }
  // The callback runs on the thread that completes the transfer: keep it short.
  void on_complete(CompletionCallback callback) { state_->on_complete(std::move(callback)); }
  // As on_complete (when `callback` is given), and the handle stops waiting in its destructor:
  // for callers that act on completion rather than wait for it. The transfer keeps its layouts
  // alive until it ends.
  void detach(CompletionCallback callback = {});

 private:
  std::shared_ptr<CompletionState> state_;
};

}  // namespace kvbm
