#pragma once
// What `kvbm bench` needs of each tier, whatever its kind: whole-layout fill, poison and
// snapshot (for verification), and the raw ceiling of a contiguous copy between two tiers.
#include <cstddef>
#include <random>
#include <span>
#include <vector>

#include "kvbm/layout/layout.hpp"
#include "kvbm/transfer/block_pair.hpp"

namespace kvbm::tools {

using HostBytes = std::vector<std::byte>;

// Writes `bytes` into the layout's single region from its start.
void store_region(const Layout& layout, const HostBytes& bytes);
// Reads the layout's whole region into host memory.
[[nodiscard]] HostBytes load_region(const Layout& layout);

// GB/s of one contiguous copy of `bytes` from the start of src's region to the start of dst's,
// done the plainest fast way for the pair: one memcpy (host), one O_DIRECT pread or pwrite
// (disk; disk -> disk reads then writes), one cudaMemcpy (device; CUDA builds).
[[nodiscard]] double ceiling_gbps(const Layout& src, const Layout& dst, std::size_t bytes);

// GB/s of one plain cudaMemcpyBatchAsync (one stream, default attributes) over the chunks of
// `pairs`: the baseline the copy-engine path must beat. Single-chunk blocks only.
[[nodiscard]] double plain_batch_gbps(const Layout& src, const Layout& dst, std::span<const BlockPair> pairs);

}  // namespace kvbm::tools
