#include "kvbm/distributed/block_transfer_handler.hpp"

#include <memory>

#include "common/logger.hpp"
#include "common/make_error.hpp"

namespace kvbm {

bool is_accepted_pair(BlockTransferPool from, BlockTransferPool to) {
  using P = BlockTransferPool;
  return (from == P::Device && (to == P::Host || to == P::Disk)) || (from == P::Host && (to == P::Device || to == P::Disk)) ||
         (from == P::Disk && to == P::Device);
}

BlockTransferHandler::BlockTransferHandler(BlockPools pools, std::shared_ptr<TransferContext> context,
                                           std::shared_ptr<ConnectorScheduler> scheduler, NcclConfig nccl)
    : pools_(std::move(pools)), context_(std::move(context)), scheduler_(std::move(scheduler)),
      mode_(nccl.enabled ? TransferMode::Replicated : TransferMode::Sharded) {
  if (!context_) throw make_error(ErrorCode::InvalidArgument, "BlockTransferHandler needs a transfer context");
  if (nccl.enabled && (nccl.world_size <= 0 || nccl.rank < 0 || nccl.rank >= nccl.world_size)) {
    throw make_error(ErrorCode::InvalidArgument, "NCCL config: rank {} is outside [0, world_size={})", nccl.rank,
                     nccl.world_size);
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

TransferHandle BlockTransferHandler::start_transfer(const BlockTransferRequest& request) {
  if (mode_ == TransferMode::Replicated) {
    return TransferHandle::completed(
        make_error(ErrorCode::Unsupported, "replicated transfer mode (NCCL broadcast) is not available in this build"));
  }
  if (!is_accepted_pair(request.from_pool, request.to_pool)) {
    return TransferHandle::completed(make_error(ErrorCode::InvalidArgument, "invalid transfer type {} -> {}",
                                                to_string(request.from_pool), to_string(request.to_pool)));
  }
  if (request.blocks.empty()) {
    return TransferHandle::completed(make_error(ErrorCode::InvalidArgument, "the request names no blocks"));
  }
  try {
    (void)pool(request.from_pool);  // names a pool that is not configured
    (void)pool(request.to_pool);
  } catch (const Error& error) {
    return TransferHandle::completed(error);
  }
  const PreparedPair& prepared = paths_[pair_index(request.from_pool, request.to_pool)];
  if (prepared.error) return TransferHandle::completed(*prepared.error);
  log().debug("sharded transfer of {} blocks {} -> {}", request.blocks.size(), to_string(request.from_pool),
              to_string(request.to_pool));
  // The path splits the request into batches run concurrently, and fails the whole with the
  // first batch's error (seed 000's batcher).
  return prepared.path->post(request.blocks);
}

void BlockTransferHandler::start(const BlockTransferRequest& request, CompletionCallback done) {
  if (!request.connector_req) {
    start_transfer(request).detach(std::move(done));
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
  start_transfer(request).detach(finish);
}

void BlockTransferHandler::execute(const BlockTransferRequest& request) {
  // A transfer handle's state, for its wait: it polls before it sleeps (a future would sleep
  // at once and pay a wake-up longer than a one-block transfer).
  auto outcome = std::make_shared<CompletionState>(spin_budgets(context_->config().latency).handle_wait);
  start(request, [outcome](const Status& status) { outcome->complete(status); });
  outcome->wait().throw_if_error();
}

}  // namespace kvbm
