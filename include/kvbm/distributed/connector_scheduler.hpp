#pragma once
// The worker's view of connector operations (seed 000's TransferSchedulerClient). A request
// that carries connector_req is registered when it arrives, scheduled when a worker thread
// picks it up, and marked complete with its outcome. Beyond the seed: an operation cancelled
// before it starts is skipped and reported as cancelled (the seed asserts instead).
//
// Memory is bounded whatever the leader sends: uuids are at most kMaxConnectorIdBytes, and the
// table remembers at most `capacity` operations that are not running (cancelled in advance, or
// recently finished), forgetting the oldest first.
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "kvbm/common/error.hpp"
#include "kvbm/distributed/wire.hpp"

namespace kvbm {

enum class SchedulingDecision { Execute, Cancel };

class ConnectorScheduler {
 public:
  enum class State { Queued, Running, Cancelled, Finished };
  // Called by mark_complete() with each finished operation, before it is recorded as finished;
  // where an engine learns of completions. It runs on the thread that finished the transfer.
  using CompletionObserver = std::function<void(const ConnectorRequest&, const Status&)>;

  static constexpr std::size_t kDefaultCapacity = 4096;
  explicit ConnectorScheduler(std::size_t capacity = kDefaultCapacity, CompletionObserver observer = nullptr);

  // The operation has arrived and waits its turn. A uuid that had finished starts afresh.
  void enqueue(const ConnectorRequest& request);
  // A worker thread is about to run it: Execute, or Cancel when it was cancelled while queued.
  [[nodiscard]] SchedulingDecision schedule(const ConnectorRequest& request);
  // The operation ended (ok, failed or cancelled).
  void mark_complete(const ConnectorRequest& request, const Status& status);
  // Cancels an operation that has not started: a queued one, or one not seen yet (it is
  // cancelled in advance). Throws InvalidArgument for one running or finished, and for a uuid
  // that is empty or longer than kMaxConnectorIdBytes.
  void cancel(const std::string& uuid);

  [[nodiscard]] std::optional<State> state(const std::string& uuid) const;
  // Operations the table holds: queued and running ones, and the remembered others.
  [[nodiscard]] std::size_t tracked() const;

 private:
  // Records `uuid` as not running (Cancelled or Finished), forgetting the oldest such entry
  // when more than capacity_ are remembered. Called with mutex_ held.
  void remember(const std::string& uuid, State state);

  struct Entry {
    State state;
    std::uint64_t stamp;  // which remember() call recorded it; 0 while queued or running
  };

  const std::size_t capacity_;
  const CompletionObserver observer_;
  mutable std::mutex mutex_;
  std::map<std::string, Entry> operations_;                   // by uuid
  std::deque<std::pair<std::string, std::uint64_t>> remembered_;  // (uuid, stamp), oldest first
  std::uint64_t next_stamp_ = 1;
};

}  // namespace kvbm
