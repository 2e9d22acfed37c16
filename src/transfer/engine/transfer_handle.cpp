#include "kvbm/transfer/transfer_handle.hpp"

#include "common/poll.hpp"

namespace kvbm {
namespace {

// How long a waiter told that the end is near polls before it sleeps again: the last two
// batches of a large GPU transfer (64 MiB each at PCIe speed) take about 2.4 ms.
constexpr std::chrono::milliseconds kPollNearTheEnd{4};

}  // namespace

void CompletionState::end_is_near() {
  {
    std::lock_guard lock(mutex_);
    if (status_ || end_is_near_) return;
    end_is_near_ = true;
  }
  done_.notify_all();
}

void CompletionState::complete(Status status) {
  std::vector<CompletionCallback> callbacks;
  {
    std::lock_guard lock(mutex_);
    if (status_) return;  // completes once; a late second outcome is dropped
    status_ = std::move(status);
    completing_thread_ = std::this_thread::get_id();
    callbacks.swap(callbacks_);
  }
  // status_ is written once and never again, so the callbacks may read it without the lock.
  for (auto& callback : callbacks) callback(*status_);
  {
    std::lock_guard lock(mutex_);
    settled_ = true;
  }
  bump(version_);
  done_.notify_all();
}

bool CompletionState::visible() const {
  return settled_ || (status_ && completing_thread_ == std::this_thread::get_id());
}

Status CompletionState::wait() {
  std::unique_lock lock(mutex_);
  const auto done = [&] { return visible(); };
  // A condition variable's wake-up costs tens of microseconds on a VM, as much as a small
  // transfer takes: poll first (spin_budgets(TransferConfig::latency).handle_wait). A long transfer says
  // when its last part is under way: the waiter wakes then and polls for the end.
  if (poll_for(lock, poll_before_sleep_, version_, done)) return *status_;
  ++sleeps_;
  done_.wait(lock, [&] { return visible() || end_is_near_; });
  if (!poll_for(lock, kPollNearTheEnd, version_, done)) {
    ++sleeps_;
    done_.wait(lock, done);
  }
  return *status_;
}

std::uint64_t CompletionState::sleeps() {
  std::lock_guard lock(mutex_);
  return sleeps_;
}

std::optional<Status> CompletionState::wait_for(std::chrono::nanoseconds timeout) {
  std::unique_lock lock(mutex_);
  if (!done_.wait_for(lock, timeout, [&] { return visible(); })) return std::nullopt;
  return status_;
}

std::optional<Status> CompletionState::poll() {
  std::lock_guard lock(mutex_);
  if (!visible()) return std::nullopt;
  return status_;
}

void CompletionState::on_complete(CompletionCallback callback) {
  {
    std::lock_guard lock(mutex_);
    if (!status_) {
      callbacks_.push_back(std::move(callback));
      return;
    }
  }
  callback(*status_);
}

void TransferHandle::detach(CompletionCallback callback) {
  std::shared_ptr<CompletionState> state = std::move(state_);
  if (callback) state->on_complete(std::move(callback));
}

TransferHandle TransferHandle::completed(Status status) {
  auto state = std::make_shared<CompletionState>();
  state->complete(std::move(status));
  return TransferHandle(std::move(state));
}

TransferHandle& TransferHandle::operator=(TransferHandle&& other) noexcept {
  if (this != &other) {
    if (state_) (void)state_->wait();
    state_ = std::move(other.state_);
  }
  return *this;
}

TransferHandle::~TransferHandle() {
  if (state_) (void)state_->wait();
}

}  // namespace kvbm
