#pragma once
// The leader (in the inference engine's scheduler): binds the message and reply endpoints,
// waits for every rank to register, sends each request to every worker and completes it when
// every rank has answered, naming the ranks that failed (with their errors) or stayed silent.
//
// Each worker process carries a random nonce on every reply. The leader keeps the nonce each
// rank registered with and accepts replies only from it. A second process claiming a taken
// rank is told no if the registered one still answers within the liveness probe; if it does
// not, the newcomer is a restart: the rank's blocks are gone, and every request reports that
// rank as failed (ErrorCode::Restarted) until the caller calls acknowledge_restart().
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kvbm/common/error.hpp"
#include "kvbm/common/latency.hpp"
#include "kvbm/distributed/curve_keys.hpp"
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

struct LeaderOptions {
  std::string message_endpoint;  // bound for messages (XPUB); replies on protocol::reply_endpoint
  int world_size = 1;
  // The leader's reply loop and ZeroMQ I/O thread run on this CPU (see WorkerOptions::message_cpu).
  std::optional<int> message_cpu;
  // The reply loop polls after each reply before it sleeps (see WorkerOptions::latency).
  LatencyPolicy latency = LatencyPolicy::Low;
  // Messages queued for one worker that has not read them. A send finding the queue full waits
  // for room within its timeout, then fails (never drops silently).
  int publish_hwm = 1000;
  // Largest message the leader sends or reply it accepts (KVBM_MAX_MESSAGE_BYTES).
  std::size_t max_message_bytes = std::size_t{16} << 20;
  // How long the registered process of a rank has to answer once another claims its rank.
  std::chrono::milliseconds liveness_probe = std::chrono::seconds(1);
  // Replicated mode: only workers in replicated mode register, and once all have,
  // wait_for_workers() has them make their NCCL communicator (init_replicated).
  bool replicated = false;
  // CURVE (curve_keys.hpp): the leader's key pair, and the public keys of the only workers it
  // lets connect; every message is then encrypted. Unset: plain ZeroMQ (a warning when the
  // endpoint is not on loopback).
  std::optional<CurveKeyPair> auth_key{};
  std::vector<std::string> auth_peers{};
};

class Leader {
 public:
  // Binds the endpoints. Throws InvalidArgument for a malformed endpoint, a world size <= 0, or
  // a message_cpu this process may not run on; Io when an endpoint cannot be bound.
  explicit Leader(LeaderOptions options);
  Leader(std::string message_endpoint, int world_size, std::optional<int> message_cpu = std::nullopt);
  ~Leader();
  Leader(const Leader&) = delete;
  Leader& operator=(const Leader&) = delete;

  // Repeats the handshake until ranks 0..W-1 have all answered. Throws Timeout naming the
  // missing ranks. A second worker claiming a taken rank, or a rank outside [0, W), is rejected
  // (at any time, not only here).
  void wait_for_workers(std::chrono::milliseconds timeout);

  // Sends [id, handler, frames...] to every worker and waits for every rank's reply. Messages
  // larger than max_message_bytes fail at once (InvalidArgument); one that cannot be queued
  // within the timeout fails with Timeout saying so.
  [[nodiscard]] LeaderResult send(const std::string& handler, const std::vector<std::string>& frames,
                                  std::chrono::milliseconds timeout);
  // The same, returning once the message is queued: the future collects the replies when asked
  // (on the asking thread). Every future must be done with before the leader is destroyed.
  [[nodiscard]] std::future<LeaderResult> send_async(const std::string& handler, const std::vector<std::string>& frames,
                                                     std::chrono::milliseconds timeout);
  [[nodiscard]] LeaderResult transfer(const BlockTransferRequest& request, std::chrono::milliseconds timeout);
  // Replicated mode: asks rank 0 for a new NCCL id and has every rank join that communicator.
  // Also how the workers recover after a broadcast timed out (their communicator aborted):
  // once every rank is registered again, call it. Throws the ranks' errors, or Timeout.
  void init_replicated(std::chrono::milliseconds timeout);
  [[nodiscard]] LeaderResult cancel(const std::string& uuid, std::chrono::milliseconds timeout);

  // Ranks whose process was replaced since registration (or the last acknowledge_restart).
  [[nodiscard]] std::vector<int> restarted_ranks() const;
  // The caller has accounted for the lost blocks of `rank`: its requests count again.
  // InvalidArgument for a rank outside [0, W) or one that has not restarted.
  void acknowledge_restart(int rank);

  [[nodiscard]] FinishedRequests get_finished();
  [[nodiscard]] int world_size() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvbm
