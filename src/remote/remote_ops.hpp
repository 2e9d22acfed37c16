#pragma once
// A remote transfer's work: block pairs expanded into one RMA operation per run of chunks that
// is contiguous on both sides, each checked against the local layout and the shape the peer
// declared, so that nothing outside either is named.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "kvbm/layout/layout.hpp"
#include "kvbm/transfer/block_pair.hpp"
#include "remote/agent_metadata.hpp"

namespace kvbm::remote {

struct RemoteOp {
  std::byte* local = nullptr;
  std::uint64_t remote = 0;  // address in the peer
  std::uint32_t region = 0;  // which of the peer layout's regions (its remote key)
  std::size_t bytes = 0;
};

// `pairs` are (local, remote) blocks when `local_is_source`, else (remote, local). Throws
// InvalidArgument when the shapes differ and OutOfRange naming a block past either layout.
[[nodiscard]] std::vector<RemoteOp> expand_remote(const Layout& local, const ExportedLayout& remote,
                                                  std::span<const BlockPair> pairs, bool local_is_source);

}  // namespace kvbm::remote
