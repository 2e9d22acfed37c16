#include "remote/staged_transfer.hpp"

#include "common/make_error.hpp"
#include "layout/chunk_io.hpp"

namespace kvbm::remote {

Stager::Stager(std::shared_ptr<TransferContext> cuda, std::size_t staging_bytes, StorageKind staging)
    : cuda_(std::move(cuda)), staging_bytes_(staging_bytes), staging_kind_(staging) {
  if (!cuda_) throw make_error(ErrorCode::InvalidArgument, "staging device memory needs a transfer context for its copies");
}

TransferHandle Stager::start(const LayoutPtr& local, std::vector<BlockPair> pairs, bool write, RemoteHop hop) {
  auto state = std::make_shared<CompletionState>(std::chrono::microseconds(0));  // as the agent's
  thread_.post([this, state, local, pairs = std::move(pairs), write, hop = std::move(hop)] {
    Status status;
    try {
      status = run(local, pairs, write, hop);
    } catch (...) {
      status = current_exception_as_error("staged remote transfer");
    }
    state->complete(status);
  });
  return TransferHandle(state);
}

const LayoutPtr& Stager::staging_for(const Layout& local) {
  const LayoutConfig& shape = local.config();
  LayoutPtr& staging = staging_[{shape.num_layers, shape.outer_dim, shape.chunk_bytes()}];
  if (!staging) {
    LayoutConfig config = shape;
    config.num_blocks = std::max<std::size_t>(1, staging_bytes_ / block_bytes(local));
    staging = Layout::allocate(config, staging_kind_, LayoutForm::FullyContiguous);
  }
  return staging;
}

Status Stager::run(const LayoutPtr& local, const std::vector<BlockPair>& pairs, bool write, const RemoteHop& hop) {
  const LayoutPtr& staging = staging_for(*local);
  const std::size_t slice = staging->config().num_blocks;
  for (std::size_t first = 0; first < pairs.size(); first += slice) {
    const std::size_t count = std::min(slice, pairs.size() - first);
    std::vector<BlockPair> device_side, remote_side;
    for (std::size_t i = 0; i < count; ++i) {
      const auto [a, b] = pairs[first + i];
      if (write) {
        device_side.emplace_back(a, i);  // local device block -> staging block i
        remote_side.emplace_back(i, b);  // staging block i -> remote block
      } else {
        remote_side.emplace_back(a, i);  // remote block -> staging block i
        device_side.emplace_back(i, b);  // staging block i -> local device block
      }
    }
    if (write) {
      if (Status status = cuda_->transfer(local, staging, device_side).wait(); !status.ok()) return status;
      if (Status status = hop(staging, remote_side, first + count == pairs.size()).wait(); !status.ok()) return status;
    } else {
      if (Status status = hop(staging, remote_side, first + count == pairs.size()).wait(); !status.ok()) return status;
      if (Status status = cuda_->transfer(staging, local, device_side).wait(); !status.ok()) return status;
    }
  }
  return Status{};
}

}  // namespace kvbm::remote
