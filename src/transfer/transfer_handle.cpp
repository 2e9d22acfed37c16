#include "kvbm/transfer/transfer_handle.hpp"

namespace kvbm {

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
  done_.wait(lock, [&] { return status_.has_value(); });
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
