#pragma once
// The worker's view of connector operations (seed 000's TransferSchedulerClient). A request
// that carries connector_req is registered when it arrives, scheduled when a worker thread
// picks it up, and marked complete with its outcome. Beyond the seed: an operation cancelled
// before it starts is skipped and reported as cancelled (the seed asserts instead).
#include <map>
#include <mutex>
#include <string>

#include "kvbm/common/error.hpp"
#include "kvbm/distributed/wire.hpp"

namespace kvbm {

enum class SchedulingDecision { Execute, Cancel };

class ConnectorScheduler {
 public:
  enum class State { Queued, Running, Cancelled };

  // The operation has arrived and waits its turn.
  void enqueue(const ConnectorRequest& request);
  // A worker thread is about to run it: Execute, or Cancel when it was cancelled while queued.
  [[nodiscard]] SchedulingDecision schedule(const ConnectorRequest& request);
  // The operation ended (ok, failed or cancelled): it is forgotten.
  void mark_complete(const ConnectorRequest& request, const Status& status);
  // Cancels an operation that has not started. Returns ok, or an error saying it is already
  // running; an operation not seen yet is cancelled in advance.
  [[nodiscard]] Status cancel(const std::string& uuid);

  [[nodiscard]] std::size_t tracked() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, State> operations_;  // by uuid
};

}  // namespace kvbm
