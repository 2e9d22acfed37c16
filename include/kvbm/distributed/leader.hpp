#pragma once
// The leader (in the inference engine's scheduler): binds the message and reply endpoints,
// waits for every rank to register, sends each request to every worker and completes it when
// every rank has answered, naming the ranks that failed (with their errors) or stayed silent.
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kvbm/common/error.hpp"
#include "kvbm/distributed/protocol.hpp"
#include "kvbm/distributed/wire.hpp"

namespace kvbm {

struct LeaderResult {
  Status status;                             // ok only if every rank answered ok
  std::vector<protocol::Outcome> outcomes;   // by rank; rank -1 entries are plain Dynamo acks
};

// What a vLLM-style connector's get_finished() needs: request ids whose operations completed
// on every rank since the last call.
struct FinishedRequests {
  std::vector<std::string> saving;   // offloads (from the Device pool)
  std::vector<std::string> loading;  // onboards (to the Device pool)
};

class Leader {
 public:
  // Binds `message_endpoint` (PUB) and its reply endpoint (PULL; see protocol::reply_endpoint).
  // With `message_cpu`, the leader's reply loop and ZeroMQ I/O thread run on that CPU (see
  // WorkerOptions::message_cpu); a CPU this process may not run on is InvalidArgument.
  Leader(std::string message_endpoint, int world_size, std::optional<int> message_cpu = std::nullopt);
  ~Leader();
  Leader(const Leader&) = delete;
  Leader& operator=(const Leader&) = delete;

  // Repeats the handshake until ranks 0..W-1 have all answered. Throws Timeout naming the
  // missing ranks. A second worker claiming a taken rank, or a rank outside [0, W), is rejected.
  void wait_for_workers(std::chrono::milliseconds timeout);

  // Sends [id, handler, frames...] to every worker and waits for every rank's reply.
  [[nodiscard]] LeaderResult send(const std::string& handler, const std::vector<std::string>& frames,
                                  std::chrono::milliseconds timeout);
  [[nodiscard]] LeaderResult transfer(const BlockTransferRequest& request, std::chrono::milliseconds timeout);
  [[nodiscard]] LeaderResult cancel(const std::string& uuid, std::chrono::milliseconds timeout);

  [[nodiscard]] FinishedRequests get_finished();
  [[nodiscard]] int world_size() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvbm
