#include "kvbm/distributed/block_transfer_handler.hpp"

#include <memory>
#include <mutex>

#include "common/logger.hpp"
#include "common/make_error.hpp"
#include "common/thread_pool.hpp"
#include "distributed/replicated_broadcast.hpp"
#include "kvbm/distributed/nccl_communicator.hpp"
#include "platform/cuda_runtime.hpp"

namespace kvbm {

bool is_accepted_pair(BlockTransferPool from, BlockTransferPool to) {
  using P = BlockTransferPool;
  return from == P::Device || (from == P::Host && (to == P::Device || to == P::Disk)) || (from == P::Disk && to == P::Device);
}

// Replicated mode's one thread, its staging, the status word rank 0 broadcasts before the
// blocks (so that a failed load fails every rank instead of sending them stale bytes), and the
// current communicator.
class ReplicatedRunner {
 public:
  ReplicatedRunner(const LayoutPtr& device, std::size_t staging_bytes)
      : broadcast(device, {.staging_bytes = staging_bytes}),
        status_word(Region::allocate_device(static_cast<std::uint32_t>(device->kind().index()), kDirectIoAlignment)) {}

  PackedBroadcast broadcast;
  RegionPtr status_word;
  std::mutex mutex;
  std::shared_ptr<NcclCommunicator> communicator;
  ThreadPool thread{1};  // last: destroyed first, finishing its queue while the rest is there
};

BlockTransferHandler::BlockTransferHandler(BlockPools pools, std::shared_ptr<TransferContext> context,
                                           std::shared_ptr<ConnectorScheduler> scheduler, NcclConfig nccl)
    : pools_(std::move(pools)), context_(std::move(context)), scheduler_(std::move(scheduler)),
      mode_(nccl.enabled ? TransferMode::Replicated : TransferMode::Sharded), nccl_(nccl) {
  if (!context_) throw make_error(ErrorCode::InvalidArgument, "BlockTransferHandler needs a transfer context");
  if (nccl.enabled && (nccl.world_size <= 0 || nccl.rank < 0 || nccl.rank >= nccl.world_size)) {
    throw make_error(ErrorCode::InvalidArgument, "NCCL config: rank {} is outside [0, world_size={})", nccl.rank,
                     nccl.world_size);
  }
  if (nccl.enabled) {
    if (!pools_.device || !pools_.device->kind().is_device()) {
      throw make_error(ErrorCode::InvalidArgument, "replicated mode needs a Device pool on every rank");
    }
    replicated_ = std::make_unique<ReplicatedRunner>(pools_.device, nccl.staging_bytes);
  }
  using P = BlockTransferPool;
  for (P from : {P::Device, P::Host, P::Disk}) {
    for (P to : {P::Device, P::Host, P::Disk}) {
      if (!is_accepted_pair(from, to)) continue;
      const LayoutPtr* src = which_pool(from);
      const LayoutPtr* dst = which_pool(to);
      if (!*src || !*dst) continue;
      PreparedPair& prepared = paths_[pair_index(from, to)];
      try {
        prepared.path = context_->prepare(*src, *dst);
      } catch (const Error& error) {
        prepared.error = make_error(error.code(), "{} -> {}: {}", to_string(from), to_string(to), error.message());
      }
    }
  }
}

std::size_t BlockTransferHandler::pair_index(BlockTransferPool from, BlockTransferPool to) {
  return static_cast<std::size_t>(from) * 3 + static_cast<std::size_t>(to);
}

const LayoutPtr* BlockTransferHandler::which_pool(BlockTransferPool which) const {
  return which == BlockTransferPool::Device ? &pools_.device : which == BlockTransferPool::Host ? &pools_.host : &pools_.disk;
}

const LayoutPtr& BlockTransferHandler::pool(BlockTransferPool which) const {
  const LayoutPtr& layout = *which_pool(which);
  if (!layout) throw make_error(ErrorCode::InvalidArgument, "the {} pool is not configured on this worker", to_string(which));
  return layout;
}

BlockTransferHandler::~BlockTransferHandler() = default;

void BlockTransferHandler::set_communicator(std::shared_ptr<NcclCommunicator> communicator) {
  if (!replicated_) throw make_error(ErrorCode::InvalidArgument, "set_communicator: this worker is in sharded mode");
  if (!communicator || communicator->rank() != nccl_.rank || communicator->world_size() != nccl_.world_size) {
    throw make_error(ErrorCode::InvalidArgument, "set_communicator: not a communicator of rank {} of {}", nccl_.rank,
                     nccl_.world_size);
  }
  std::lock_guard lock(replicated_->mutex);
  if (replicated_->communicator) replicated_->communicator->retire();
  replicated_->communicator = std::move(communicator);
}

std::optional<Error> BlockTransferHandler::refuse(const BlockTransferRequest& request) const {
  if (!is_accepted_pair(request.from_pool, request.to_pool)) {
    return make_error(ErrorCode::InvalidArgument, "invalid transfer type {} -> {}", to_string(request.from_pool),
                      to_string(request.to_pool));
  }
  if (request.blocks.empty()) return make_error(ErrorCode::InvalidArgument, "the request names no blocks");
  try {
    (void)pool(request.from_pool);  // names a pool that is not configured
    (void)pool(request.to_pool);
  } catch (const Error& error) {
    return error;
  }
  const PreparedPair& prepared = paths_[pair_index(request.from_pool, request.to_pool)];
  if (prepared.error) return *prepared.error;
  return std::nullopt;
}

Status BlockTransferHandler::run_replicated(const BlockTransferRequest& request,
                                            const std::shared_ptr<NcclCommunicator>& communicator) {
  const bool loads_device = request.to_pool == BlockTransferPool::Device;
  const bool rank0 = nccl_.rank == 0;
  std::optional<Error> refused = refuse(request);
  // Every rank refuses the same requests (they all see the same pools), before any collective.
  if (refused) return *refused;
  if (loads_device && request.from_pool == BlockTransferPool::Device) {
    // Device -> Device: every rank copies within its own pool, which holds the same blocks.
    return paths_[pair_index(request.from_pool, request.to_pool)].path->post(request.blocks).wait();
  }
  if (!loads_device) {
    // Offloads and host <-> disk: rank 0's copy is the one kept.
    if (!rank0) return Status{};
    return paths_[pair_index(request.from_pool, request.to_pool)].path->post(request.blocks).wait();
  }
  if (!communicator) {
    return make_error(ErrorCode::InvalidArgument, "rank {}: replicated mode has no NCCL communicator yet (the leader makes "
                      "one after every rank has registered)", nccl_.rank);
  }
  try {
    std::int32_t loaded = 1;
    Status load;
    if (rank0) {
      load = paths_[pair_index(request.from_pool, request.to_pool)].path->post(request.blocks).wait();
      loaded = load.ok() ? 1 : 0;
      cuda::copy_to_device(replicated_->status_word->data(), &loaded, sizeof(loaded));
    }
    const std::pair<void*, std::size_t> word{replicated_->status_word->data(), sizeof(loaded)};
    communicator->broadcast(std::span(&word, 1), 0);
    if (!rank0) cuda::copy_to_host(&loaded, replicated_->status_word->data(), sizeof(loaded));
    if (!loaded) {
      return rank0 ? load : make_error(ErrorCode::Io, "rank {}: rank 0 could not load the blocks; nothing was broadcast",
                                       nccl_.rank);
    }
    std::vector<std::size_t> destinations;
    destinations.reserve(request.blocks.size());
    for (const auto& [src, dst] : request.blocks) destinations.push_back(dst);
    Status moved;
    try {
      replicated_->broadcast.run(*communicator, destinations);
    } catch (const Error& error) {
      if (communicator->aborted()) throw;  // no agreement to reach: the others time out too
      moved = error;
    }
    // Every rank learns whether every other one has the blocks (and that none is gone).
    if (!communicator->all_ok(moved.ok())) {
      return moved.ok() ? make_error(ErrorCode::Io, "rank {}: another rank failed to receive the blocks", nccl_.rank) : moved;
    }
    return Status{};
  } catch (...) {
    return current_exception_as_error(fmt::format("rank {}: replicated transfer", nccl_.rank));
  }
}

void BlockTransferHandler::start_transfer(const BlockTransferRequest& request, CompletionCallback done) {
  if (mode_ == TransferMode::Replicated) {
    std::shared_ptr<NcclCommunicator> communicator;
    {
      std::lock_guard lock(replicated_->mutex);
      communicator = replicated_->communicator;
    }
    replicated_->thread.post([this, request, communicator = std::move(communicator), done = std::move(done)] {
      done(run_replicated(request, communicator));
    });
    return;
  }
  if (auto refused = refuse(request)) {
    done(*refused);
    return;
  }
  const PreparedPair& prepared = paths_[pair_index(request.from_pool, request.to_pool)];
  log().debug("sharded transfer of {} blocks {} -> {}", request.blocks.size(), to_string(request.from_pool),
              to_string(request.to_pool));
  // The path splits the request into batches run concurrently, and fails the whole with the
  // first batch's error (seed 000's batcher). `done` is attached before the batches start, so
  // it runs on the thread that finishes them, never on the caller's behind a fast transfer:
  // a worker's receiving thread stays free for the next message whatever `done` does.
  prepared.path->post(request.blocks, std::move(done)).detach();
}

void BlockTransferHandler::start(const BlockTransferRequest& request, CompletionCallback done) {
  if (!request.connector_req) {
    start_transfer(request, std::move(done));
    return;
  }
  const ConnectorRequest& connector = *request.connector_req;
  if (!scheduler_) {
    done(make_error(ErrorCode::InvalidArgument, "request {} carries connector_req but this worker has no scheduler",
                    connector.request_id));
    return;
  }
  const auto finish = [scheduler = scheduler_, connector, done = std::move(done)](const Status& status) {
    scheduler->mark_complete(connector, status);
    done(status);
  };
  if (scheduler_->schedule(connector) == SchedulingDecision::Cancel) {
    finish(make_error(ErrorCode::Cancelled, "connector operation {} of request {} was cancelled before it started",
                      connector.uuid, connector.request_id));
    return;
  }
  start_transfer(request, finish);
}

void BlockTransferHandler::execute(const BlockTransferRequest& request) {
  // A transfer handle's state, for its wait: it polls before it sleeps (a future would sleep
  // at once and pay a wake-up longer than a one-block transfer).
  auto outcome = std::make_shared<CompletionState>(spin_budgets(context_->config().latency).handle_wait);
  start(request, [outcome](const Status& status) { outcome->complete(status); });
  outcome->wait().throw_if_error();
}

}  // namespace kvbm
