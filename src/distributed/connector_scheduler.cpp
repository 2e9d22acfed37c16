#include "kvbm/distributed/connector_scheduler.hpp"

#include "common/logger.hpp"
#include "common/make_error.hpp"

namespace kvbm {

ConnectorScheduler::ConnectorScheduler(std::size_t capacity, CompletionObserver observer)
    : capacity_(std::max<std::size_t>(1, capacity)), observer_(std::move(observer)) {}

void ConnectorScheduler::enqueue(const ConnectorRequest& request) {
  std::lock_guard lock(mutex_);
  auto [it, inserted] = operations_.emplace(request.uuid, Entry{State::Queued, 0});
  // A uuid cancelled in advance stays cancelled; one that finished is a new operation.
  if (!inserted && it->second.state == State::Finished) it->second = {State::Queued, 0};
}

SchedulingDecision ConnectorScheduler::schedule(const ConnectorRequest& request) {
  std::lock_guard lock(mutex_);
  auto [it, inserted] = operations_.emplace(request.uuid, Entry{State::Running, 0});
  if (!inserted && it->second.state == State::Cancelled) return SchedulingDecision::Cancel;
  it->second = {State::Running, 0};
  return SchedulingDecision::Execute;
}

void ConnectorScheduler::mark_complete(const ConnectorRequest& request, const Status& status) {
  log().debug("connector operation {} of request {} finished: {}", printable(request.uuid),
              printable(request.request_id), status.to_string());
  if (observer_) observer_(request, status);
  std::lock_guard lock(mutex_);
  remember(request.uuid, State::Finished);
}

void ConnectorScheduler::cancel(const std::string& uuid) {
  if (uuid.empty() || uuid.size() > kMaxConnectorIdBytes) {
    throw make_error(ErrorCode::InvalidArgument, "connector uuid of {} bytes (must be 1 to {})", uuid.size(),
                     kMaxConnectorIdBytes);
  }
  std::lock_guard lock(mutex_);
  const auto it = operations_.find(uuid);
  if (it == operations_.end()) {
    remember(uuid, State::Cancelled);
    return;
  }
  switch (it->second.state) {
    case State::Queued: it->second.state = State::Cancelled; return;
    case State::Cancelled: return;
    case State::Running:
      throw make_error(ErrorCode::InvalidArgument, "connector operation {} is already running and cannot be cancelled",
                       printable(uuid));
    case State::Finished:
      throw make_error(ErrorCode::InvalidArgument, "connector operation {} has already finished", printable(uuid));
  }
}

void ConnectorScheduler::remember(const std::string& uuid, State state) {
  const std::uint64_t stamp = next_stamp_++;
  operations_.insert_or_assign(uuid, Entry{state, stamp});
  remembered_.emplace_back(uuid, stamp);
  // A record whose uuid has been recorded again since (or is queued or running again) does not
  // match its entry's stamp, and forgets nothing.
  while (remembered_.size() > capacity_) {
    const auto& [oldest, oldest_stamp] = remembered_.front();
    const auto it = operations_.find(oldest);
    if (it != operations_.end() && it->second.stamp == oldest_stamp) operations_.erase(it);
    remembered_.pop_front();
  }
}

std::optional<ConnectorScheduler::State> ConnectorScheduler::state(const std::string& uuid) const {
  std::lock_guard lock(mutex_);
  const auto it = operations_.find(uuid);
  if (it == operations_.end()) return std::nullopt;
  return it->second.state;
}

std::size_t ConnectorScheduler::tracked() const {
  std::lock_guard lock(mutex_);
  return operations_.size();
}

}  // namespace kvbm
