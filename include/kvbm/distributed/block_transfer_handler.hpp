#pragma once
// The worker side of a distributed transfer (seed 000): Device, Host and Disk pools (each
// optional), the transfer context with a path prepared for each accepted pair of pools, an
// optional connector scheduler, and the transfer mode.
// Where the seed panics (an index past a pool, a pool not configured, a connector request
// without a scheduler) this returns an error.
#include <array>
#include <cstddef>
#include <memory>
#include <optional>

#include "kvbm/distributed/connector_scheduler.hpp"
#include "kvbm/distributed/wire.hpp"
#include "kvbm/layout/layout.hpp"
#include "kvbm/transfer/transfer_context.hpp"

namespace kvbm {

enum class TransferMode { Sharded, Replicated };

// Replicated mode: rank 0 loads and NCCL broadcasts to every GPU. Disabled = sharded. The
// communicator comes later (set_communicator), once the leader has handed every rank its id.
struct NcclConfig {
  bool enabled = false;
  int rank = 0;
  int world_size = 1;
  // Device memory the broadcast packs blocks into (two pieces of half of it), allocated with the
  // handler; larger requests stream through it.
  std::size_t staging_bytes = std::size_t{128} << 20;
  [[nodiscard]] static NcclConfig disabled() { return {}; }
};

class NcclCommunicator;
class ReplicatedRunner;

struct BlockPools {
  LayoutPtr device;
  LayoutPtr host;
  LayoutPtr disk;
};

class BlockTransferHandler {
 public:
  BlockTransferHandler(BlockPools pools, std::shared_ptr<TransferContext> context,
                       std::shared_ptr<ConnectorScheduler> scheduler, NcclConfig nccl = NcclConfig::disabled());

  ~BlockTransferHandler();
  BlockTransferHandler(const BlockTransferHandler&) = delete;
  BlockTransferHandler& operator=(const BlockTransferHandler&) = delete;

  [[nodiscard]] TransferMode transfer_mode() const { return mode_; }
  // Replicated mode: the communicator the broadcasts of requests started from now on go through
  // (a new one after the old one was aborted). The old one is retired: a request still waiting
  // in its collectives gives up at once, and requests started before run with it, so they fail
  // instead of pairing their collectives with other requests' on the new one. InvalidArgument
  // in sharded mode or for a communicator of another rank or world size.
  void set_communicator(std::shared_ptr<NcclCommunicator> communicator);
  [[nodiscard]] const BlockPools& pools() const { return pools_; }
  [[nodiscard]] ConnectorScheduler* scheduler() const { return scheduler_.get(); }

  // Starts one request; `done` runs once with its outcome, on the thread that finishes it (at
  // once, on this thread, for a request that cannot start). With connector_req, the operation
  // goes through the scheduler and is marked complete before `done` runs.
  void start(const BlockTransferRequest& request, CompletionCallback done);
  // start() and wait; throws the error the request ended with.
  void execute(const BlockTransferRequest& request);
  // The pool a name refers to, or an error when it is not configured.
  [[nodiscard]] const LayoutPtr& pool(BlockTransferPool pool) const;

 private:
  [[nodiscard]] const LayoutPtr* which_pool(BlockTransferPool which) const;
  // Starts the transfer and calls `done` with its end, or at once with the error when the
  // request is not one this worker can run.
  void start_transfer(const BlockTransferRequest& request, CompletionCallback done);
  // Why this worker cannot run `request` (pair, pools, blocks), or nullopt.
  [[nodiscard]] std::optional<Error> refuse(const BlockTransferRequest& request) const;
  // Replicated mode, on the runner's thread: rank 0 loads, then every rank joins the broadcast.
  [[nodiscard]] Status run_replicated(const BlockTransferRequest& request,
                                      const std::shared_ptr<NcclCommunicator>& communicator);

  // The path of each accepted pair whose pools exist, prepared at construction, or why it
  // could not be.
  struct PreparedPair {
    std::optional<TransferPath> path;
    std::optional<Error> error;
  };
  [[nodiscard]] static std::size_t pair_index(BlockTransferPool from, BlockTransferPool to);

  BlockPools pools_;
  std::shared_ptr<TransferContext> context_;
  std::array<PreparedPair, 9> paths_;  // by pair_index
  std::shared_ptr<ConnectorScheduler> scheduler_;
  TransferMode mode_;
  NcclConfig nccl_;
  // Replicated mode: runs requests one at a time in arrival order, so that every rank enters
  // each broadcast in the same order.
  std::unique_ptr<ReplicatedRunner> replicated_;
};

// The pool pairs a worker accepts: the seed's Device->Host, Device->Disk, Host->Device,
// Host->Disk, Disk->Device, and Device->Device within a rank's own pool (the seed routes it to
// a local copy in replicated mode, and the copy engine moves blocks inside one layout, refusing
// a request whose destinations overlap its sources).
[[nodiscard]] bool is_accepted_pair(BlockTransferPool from, BlockTransferPool to);

}  // namespace kvbm
