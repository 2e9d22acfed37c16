#pragma once
// The worker side of a distributed transfer (seed 000): Device, Host and Disk pools (each
// optional), the transfer context with a path prepared for each accepted pair of pools, an
// optional connector scheduler, and the transfer mode.
// Where the seed panics (an index past a pool, a pool not configured, a connector request
// without a scheduler) this returns an error.
#include <array>
#include <memory>
#include <optional>

#include "kvbm/distributed/connector_scheduler.hpp"
#include "kvbm/distributed/wire.hpp"
#include "kvbm/layout/layout.hpp"
#include "kvbm/transfer/transfer_context.hpp"

namespace kvbm {

enum class TransferMode { Sharded, Replicated };

// Replicated mode: rank 0 loads and NCCL broadcasts to every GPU. Disabled = sharded.
struct NcclConfig {
  bool enabled = false;
  int rank = 0;
  int world_size = 1;
  [[nodiscard]] static NcclConfig disabled() { return {}; }
};

struct BlockPools {
  LayoutPtr device;
  LayoutPtr host;
  LayoutPtr disk;
};

class BlockTransferHandler {
 public:
  BlockTransferHandler(BlockPools pools, std::shared_ptr<TransferContext> context,
                       std::shared_ptr<ConnectorScheduler> scheduler, NcclConfig nccl = NcclConfig::disabled());

  [[nodiscard]] TransferMode transfer_mode() const { return mode_; }
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
  // The transfer itself, or an error handle when the request is not one this worker can run.
  [[nodiscard]] TransferHandle start_transfer(const BlockTransferRequest& request);

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
};

// The pool pairs the seed accepts: Device->Host, Device->Disk, Host->Device, Host->Disk, Disk->Device.
[[nodiscard]] bool is_accepted_pair(BlockTransferPool from, BlockTransferPool to);

}  // namespace kvbm
