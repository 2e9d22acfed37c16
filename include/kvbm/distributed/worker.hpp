#pragma once
// A worker (one per GPU rank): connects to the leader, announces its rank, and serves messages
// by handler name until shut down. Every message is acknowledged, success or error, and the
// worker keeps serving after any error: nothing a leader sends ends the process.
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "kvbm/common/latency.hpp"
#include "kvbm/distributed/block_transfer_handler.hpp"
#include "kvbm/distributed/curve_keys.hpp"
#include "kvbm/remote/remote_agent.hpp"

namespace kvbm {

// Dynamo 1.6's protocol (dynamo_protocol.hpp): the worker answers worker_metadata with these
// figures, sizes its host and disk pools when leader_metadata comes, acks ping once they are
// ready, and replies to Dynamo's messages with plain acks (kvbm's own messages keep kvbm's
// replies). It never announces itself.
struct DynamoWorkerMode {
  std::uint64_t device_blocks = 0;    // reported in worker_metadata
  std::uint64_t bytes_per_block = 0;  // reported in worker_metadata
  // Called on leader_metadata, on the receive thread after the ack, with the leader's counts:
  // returns the handler serving pools of those sizes from then on. What it throws ends run().
  std::function<std::shared_ptr<BlockTransferHandler>(std::uint64_t host_blocks, std::uint64_t disk_blocks)> make_handler;
};

struct WorkerOptions {
  std::string leader_endpoint;  // the leader's message endpoint (tcp://HOST:PORT or ipc://PATH)
  int rank = 0;
  int world_size = 1;
  std::size_t concurrent_transfers = 4;  // DYN_KVBM_MAX_CONCURRENT_TRANSFERS
  // When set, run() pins its thread, and the worker its ZeroMQ I/O thread, to this CPU: each
  // message then reaches the receive loop without waking a thread on an idle CPU.
  std::optional<int> message_cpu;
  // After each message the receive loop polls before it sleeps, for spin_budgets(latency).message:
  // at Low, longer than a round trip, so a steady stream of requests never waits for a wake-up
  // (KVBM_LATENCY).
  LatencyPolicy latency = LatencyPolicy::Low;
  // Limits on what a leader may send (KVBM_MAX_MESSAGE_BYTES, KVBM_MAX_BLOCK_PAIRS): larger
  // messages and requests are answered with an error that names the size and the limit.
  std::size_t max_message_bytes = std::size_t{16} << 20;
  std::size_t max_block_pairs = kDefaultMaxBlockPairs;
  // Until the first message from the leader, run() warns every report interval and gives up
  // after this long (KVBM_LEADER_WAIT_MS).
  std::chrono::milliseconds leader_wait = std::chrono::minutes(5);
  // When stopping, how long running transfers may take to finish before they are answered with
  // an error (KVBM_SHUTDOWN_DRAIN_MS).
  std::chrono::milliseconds drain_timeout = std::chrono::seconds(30);
  std::string reply_endpoint;  // where replies go; empty: protocol::reply_endpoint(leader_endpoint)
  std::optional<DynamoWorkerMode> dynamo;
  // Replicated mode (the handler's NcclConfig says so too): the worker says so in its hello and
  // makes its NCCL communicator when the leader sends kvbm.nccl_init. Joining it and every
  // broadcast give up after nccl_timeout (KVBM_NCCL_TIMEOUT_MS), aborting the communicator.
  bool replicated = false;
  // A remote agent exporting the host pool (distributed/remote_service.hpp: kvbm.remote_*).
  std::optional<RemoteAgentOptions> remote;
  std::chrono::milliseconds nccl_timeout = std::chrono::seconds(30);
  // CURVE (curve_keys.hpp): this worker's key pair and the leader's public key; the worker then
  // talks to that leader alone, encrypted. Unset: plain ZeroMQ.
  std::optional<CurveKeyPair> auth_key{};
  std::string leader_public_key{};
  // Transfers waiting for one of the concurrent_transfers slots, at most (KVBM_MAX_WAITING_TRANSFERS): one more is
  // answered at once with an error naming the bound, so a flood costs no unbounded memory.
  std::size_t max_waiting_transfers = 4096;
};

class Worker {
 public:
  // Throws InvalidArgument for a rank outside [0, world_size), a malformed endpoint, a zero
  // limit, or a message_cpu this process may not run on.
  Worker(WorkerOptions options, std::shared_ptr<BlockTransferHandler> handler);
  // Waits for every transfer it started to end (their completions use the worker).
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Serves until stop(), a shutdown message, the leader rejecting this worker, or no word from
  // the leader within leader_wait; the returned status says which of the last two. On the way
  // out, requests not yet started are answered Cancelled, and running transfers get
  // drain_timeout to finish, after which they are answered Timeout. With message_cpu, the
  // calling thread runs on that CPU until run() returns, then gets its former CPUs back.
  [[nodiscard]] Status run();
  // Safe from a signal handler: one store to a lock-free atomic.
  void stop();
  // Transfers still running that run() gave up on (answered Timeout): the destructor waits
  // for them, so a process that must exit now should not destroy the worker.
  [[nodiscard]] std::size_t abandoned_transfers() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvbm
