#pragma once
// One rank's NCCL communicator for replicated mode, with every wait bounded: a rank that dies
// or stalls makes the others fail with Timeout (and abort the communicator) instead of hanging.
// NCCL is loaded at run time; without it (or without CUDA) every call is Unsupported.
#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <utility>

namespace kvbm {

class NcclCommunicator {
 public:
  // Whether NCCL and a CUDA device can be used here; `reason` says why not.
  [[nodiscard]] static bool available(std::string& reason);
  // A new communicator's id (ncclGetUniqueId) as hex text, for the others to join with.
  [[nodiscard]] static std::string new_unique_id();

  // Joins the communicator `unique_id` as `rank` of `world_size` on CUDA device `device`.
  // Returns once every rank has joined. Throws InvalidArgument for a malformed id or rank,
  // Timeout when the others did not join within `timeout`, Unsupported without NCCL.
  // `blocking`: NCCL's blocking calls (the join runs on a helper thread, which a join that
  // times out leaves behind, since no communicator exists yet to abort); else non-blocking ones,
  // which NCCL enqueues asynchronously, at a cost per call.
  NcclCommunicator(const std::string& unique_id, int rank, int world_size, int device, std::chrono::milliseconds timeout,
                   bool blocking = false);
  ~NcclCommunicator();
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  // Broadcasts each (device address, bytes) from rank `root` to every rank's same buffer, all
  // in one NCCL group, and waits for the end. Every rank calls it with buffers of the same
  // sizes, in the same order. Throws Timeout after the timeout given at construction (the
  // communicator is then aborted and every later call fails), Internal naming NCCL's error.
  void broadcast(std::span<const std::pair<void*, std::size_t>> buffers, int root);

  // The same without waiting: enqueued on the communicator's stream, after the CUDA event
  // `after` (a cudaEvent_t; null: none) has fired. The caller orders its own work after it with
  // events recorded on stream(), and ends with synchronize() or wait_event().
  void enqueue_broadcast(std::span<const std::pair<void*, std::size_t>> buffers, int root, void* after = nullptr);
  // Whether every rank says `ok` (an all-reduce of one word): how each rank learns that another
  // failed, or (Timeout, the communicator aborted) that one is gone, which a broadcast's root
  // cannot see when the bytes fit in NCCL's buffers.
  [[nodiscard]] bool all_ok(bool ok);
  // The communicator's CUDA stream (a cudaStream_t).
  [[nodiscard]] void* stream() const;
  // Waits for everything enqueued on stream(), or for the CUDA event `event`, with the
  // timeout: Timeout (and the communicator aborted) when it passes, as broadcast().
  void synchronize();
  void wait_event(void* event);

  // From any thread, once a new communicator replaces this one: whatever waits on it now, or
  // calls it later, gives up at once (Cancelled) and aborts it on its own thread, so a request
  // still in a collective with a rank that has moved on does not hold the next ones up until
  // its timeout. A retired communicator nobody calls again is aborted when it goes.
  void retire();

  [[nodiscard]] int rank() const;
  [[nodiscard]] int world_size() const;
  [[nodiscard]] int device() const;
  [[nodiscard]] bool aborted() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvbm
