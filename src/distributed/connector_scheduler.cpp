#include "kvbm/distributed/connector_scheduler.hpp"

#include "kvbm/common/log.hpp"

namespace kvbm {

void ConnectorScheduler::enqueue(const ConnectorRequest& request) {
  std::lock_guard lock(mutex_);
  // emplace keeps an earlier "Cancelled" (cancelled before it arrived).
  operations_.emplace(request.uuid, State::Queued);
}

SchedulingDecision ConnectorScheduler::schedule(const ConnectorRequest& request) {
  std::lock_guard lock(mutex_);
  auto [it, inserted] = operations_.emplace(request.uuid, State::Running);
  if (!inserted && it->second == State::Cancelled) return SchedulingDecision::Cancel;
  it->second = State::Running;
  return SchedulingDecision::Execute;
}

void ConnectorScheduler::mark_complete(const ConnectorRequest& request, const Status& status) {
  log().debug("connector operation {} of request {} finished: {}", request.uuid, request.request_id, status.to_string());
  std::lock_guard lock(mutex_);
  operations_.erase(request.uuid);
}

Status ConnectorScheduler::cancel(const std::string& uuid) {
  std::lock_guard lock(mutex_);
  auto [it, inserted] = operations_.emplace(uuid, State::Cancelled);
  if (inserted || it->second == State::Queued || it->second == State::Cancelled) {
    it->second = State::Cancelled;
    return {};
  }
  return make_error(ErrorCode::InvalidArgument, "connector operation {} is already running and cannot be cancelled", uuid);
}

std::size_t ConnectorScheduler::tracked() const {
  std::lock_guard lock(mutex_);
  return operations_.size();
}

}  // namespace kvbm
