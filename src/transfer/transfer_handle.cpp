#include "kvbm/transfer/transfer_handle.hpp"

#include "common/poll.hpp"

namespace kvbm {
namespace {
constexpr std::chrono::microseconds kPollBeforeSleep{100};
}  // namespace

void CompletionState::complete(Status status) {
  std::vector<CompletionCallback> callbacks;
  {
    std::lock_guard lock(mutex_);
    if (status_) return;  // completes once; a late second outcome is dropped
    status_ = std::move(status);
    callbacks.swap(callbacks_);
  }
  done_.notify_all();
  for (auto& callback : callbacks) callback(*status_);
}

Status CompletionState::wait() {
  std::unique_lock lock(mutex_);
  const auto done = [&] { return status_.has_value(); };
  // Small transfers end within tens of microseconds: about what a condition variable's
  // wake-up costs on a VM, so poll briefly first.
  if (!poll_for(lock, kPollBeforeSleep, done)) done_.wait(lock, done);
  return *status_;
}

std::optional<Status> CompletionState::wait_for(std::chrono::nanoseconds timeout) {
  std::unique_lock lock(mutex_);
  if (!done_.wait_for(lock, timeout, [&] { return status_.has_value(); })) return std::nullopt;
  return status_;
}

std::optional<Status> CompletionState::poll() {
  std::lock_guard lock(mutex_);
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
  state->on_complete(std::move(callback));
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
