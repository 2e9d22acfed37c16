#include "distributed/replicated_broadcast.hpp"

#include <algorithm>
#include <optional>

#include "common/make_error.hpp"

namespace kvbm {
namespace {

std::size_t block_bytes_of(const Layout& layout) {
  return layout.config().num_layers * layout.config().outer_dim * layout.chunk_bytes();
}

}  // namespace

std::pair<void*, std::size_t> contiguous_blocks(const Layout& layout, std::size_t count) {
  const auto& config = layout.config();
  const ChunkLocation first = layout.locate(0, 0, 0);
  const ChunkLocation last = layout.locate(count - 1, config.num_layers - 1, config.outer_dim - 1);
  return {first.region->data() + first.offset, last.offset + last.bytes - first.offset};
}

PackedBroadcast::PackedBroadcast(std::shared_ptr<TransferContext> context, LayoutPtr pool, std::size_t staging_bytes)
    : context_(std::move(context)), pool_(std::move(pool)) {
  if (!pool_ || !pool_->kind().is_device()) {
    throw make_error(ErrorCode::InvalidArgument, "replicated mode needs a device pool to broadcast into");
  }
  piece_blocks_ = std::max<std::size_t>(1, staging_bytes / 2 / std::max<std::size_t>(1, block_bytes_of(*pool_)));
  piece_blocks_ = std::min(piece_blocks_, pool_->config().num_blocks);
}

void PackedBroadcast::run(NcclCommunicator& communicator, std::span<const std::size_t> blocks) {
  if (blocks.empty()) return;
  for (auto& staging : staging_) {
    if (staging) continue;
    LayoutConfig config = pool_->config();
    config.num_blocks = piece_blocks_;
    staging = Layout::allocate(config, pool_->kind(), LayoutForm::FullyContiguous);
  }
  const bool sender = communicator.rank() == 0;
  const std::size_t pieces = (blocks.size() + piece_blocks_ - 1) / piece_blocks_;
  const auto pairs_of = [&](std::size_t piece, bool pack) {
    std::vector<BlockPair> pairs;
    const std::size_t first = piece * piece_blocks_;
    const std::size_t count = std::min(piece_blocks_, blocks.size() - first);
    for (std::size_t i = 0; i < count; ++i) {
      pairs.emplace_back(pack ? blocks[first + i] : i, pack ? i : blocks[first + i]);
    }
    return pairs;
  };
  const auto piece_span = [&](std::size_t piece) {
    const std::size_t count = std::min(piece_blocks_, blocks.size() - piece * piece_blocks_);
    return contiguous_blocks(*staging_[piece % 2], count);
  };
  // Each staging half is reused two pieces later: its copy (pack or unpack) must be done by then.
  std::array<std::optional<TransferHandle>, 2> copying;
  const auto finish = [&](std::size_t half) {
    if (!copying[half]) return;
    const Status status = copying[half]->wait();
    copying[half].reset();
    status.throw_if_error();
  };
  if (sender) {
    copying[0] = context_->transfer(pool_, staging_[0], pairs_of(0, true));
    for (std::size_t piece = 0; piece < pieces; ++piece) {
      finish(piece % 2);  // this piece is packed
      if (piece + 1 < pieces) {
        copying[(piece + 1) % 2] = context_->transfer(pool_, staging_[(piece + 1) % 2], pairs_of(piece + 1, true));
      }
      const auto span = piece_span(piece);
      communicator.broadcast(std::span(&span, 1), 0);
    }
    finish(0);
    finish(1);
    return;
  }
  for (std::size_t piece = 0; piece < pieces; ++piece) {
    finish(piece % 2);  // the half's previous piece is unpacked
    const auto span = piece_span(piece);
    communicator.broadcast(std::span(&span, 1), 0);
    copying[piece % 2] = context_->transfer(staging_[piece % 2], pool_, pairs_of(piece, false));
  }
  finish(0);
  finish(1);
}

}  // namespace kvbm
