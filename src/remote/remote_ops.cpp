#include "remote/remote_ops.hpp"

#include "common/make_error.hpp"

namespace kvbm::remote {
namespace {

void check_shapes(const Layout& local, const ExportedLayout& remote) {
  const LayoutConfig& a = local.config();
  const LayoutConfig& b = remote.info.config;
  if (a.num_layers != b.num_layers || a.outer_dim != b.outer_dim || a.chunk_bytes() != b.chunk_bytes()) {
    throw make_error(ErrorCode::InvalidArgument,
                     "local layout ({} layers x {} x {}-byte chunks) and remote layout {} ({} x {} x {}) differ in shape",
                     a.num_layers, a.outer_dim, a.chunk_bytes(), remote.info.id, b.num_layers, b.outer_dim,
                     b.chunk_bytes());
  }
  if (local.kind().is_disk()) {
    throw make_error(ErrorCode::InvalidArgument, "a {} layout cannot take part in a remote transfer",
                     local.kind().to_string());
  }
}

void check_block(std::size_t block, std::size_t blocks, const char* side, std::size_t pair) {
  if (block >= blocks) {
    throw make_error(ErrorCode::OutOfRange, "pair {}: {} block {} is past the layout's {} blocks", pair, side, block,
                     blocks);
  }
}

}  // namespace

std::vector<RemoteOp> expand_remote(const Layout& local, const ExportedLayout& remote, std::span<const BlockPair> pairs,
                                    bool local_is_source) {
  check_shapes(local, remote);
  const LayoutConfig& shape = remote.info.config;
  const std::size_t chunk = shape.chunk_bytes();
  std::vector<RemoteOp> ops;
  for (std::size_t p = 0; p < pairs.size(); ++p) {
    const std::size_t local_block = local_is_source ? pairs[p].first : pairs[p].second;
    const std::size_t remote_block = local_is_source ? pairs[p].second : pairs[p].first;
    check_block(local_block, local.config().num_blocks, "local", p);
    check_block(remote_block, shape.num_blocks, "remote", p);
    for (std::size_t layer = 0; layer < shape.num_layers; ++layer) {
      for (std::size_t outer = 0; outer < shape.outer_dim; ++outer) {
        const ChunkLocation here = local.locate_unchecked(local_block, layer, outer);
        const ChunkPosition there = chunk_position(shape, remote.info.form, remote.info.order, remote.base_offset,
                                                   chunk, remote_block, layer, outer);
        RemoteOp op{here.region->data() + here.offset, remote.regions[there.region].address + there.offset,
                    static_cast<std::uint32_t>(there.region), chunk};
        if (!ops.empty()) {
          RemoteOp& last = ops.back();
          if (last.region == op.region && last.local + last.bytes == op.local && last.remote + last.bytes == op.remote) {
            last.bytes += chunk;
            continue;
          }
        }
        ops.push_back(op);
      }
    }
  }
  return ops;
}

}  // namespace kvbm::remote
