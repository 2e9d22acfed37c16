#pragma once
// A worker (one per GPU rank): connects to the leader, registers its rank, and serves messages
// by handler name until shut down. Every message is acknowledged, success or error, and the
// worker keeps serving after any error.
#include <atomic>
#include <memory>
#include <optional>
#include <string>

#include "kvbm/distributed/block_transfer_handler.hpp"

namespace kvbm {

struct WorkerOptions {
  std::string leader_endpoint;  // the leader's message endpoint (tcp://HOST:PORT or ipc://PATH)
  int rank = 0;
  int world_size = 1;
  std::size_t concurrent_transfers = 4;  // DYN_KVBM_MAX_CONCURRENT_TRANSFERS
  // When set, run() pins its thread, and the worker its ZeroMQ I/O thread, to this CPU: each
  // message then reaches the receive loop without waking a thread on an idle CPU.
  std::optional<int> message_cpu;
};

class Worker {
 public:
  // Throws InvalidArgument for a rank outside [0, world_size), a malformed endpoint, or a
  // message_cpu this process may not run on.
  Worker(WorkerOptions options, std::shared_ptr<BlockTransferHandler> handler);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Serves until stop(), a shutdown message, or the leader rejecting this worker (then the
  // returned status says why). With message_cpu, the calling thread runs on that CPU until
  // run() returns, then gets its former CPUs back.
  [[nodiscard]] Status run();
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvbm
