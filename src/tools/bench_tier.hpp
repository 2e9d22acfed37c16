#pragma once
// What `kvbm bench` needs of each tier, whatever its kind: whole-layout fill, poison and
// snapshot (for verification), and the raw ceiling of a contiguous copy between two tiers.
#include <cstddef>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "kvbm/layout/layout.hpp"
#include "kvbm/transfer/block_pair.hpp"

namespace kvbm::tools {

using HostBytes = std::vector<std::byte>;

// Writes `bytes` into the layout's blocks, block b from b * block_bytes(layout): one copy of the
// region when the blocks lie end to end in it, block by block where a disk layout pads each
// chunk to the O_DIRECT alignment.
void store_blocks(const Layout& layout, const HostBytes& bytes);
// Reads every block into host memory, laid out as store_blocks takes them.
[[nodiscard]] HostBytes load_blocks(const Layout& layout);

// GB/s of one contiguous copy of `bytes` from the start of src's region to the start of dst's,
// done the plainest fast way for the pair: one memcpy (host), one O_DIRECT pread or pwrite
// (disk; disk -> disk reads then writes; `bytes` rounded up to the O_DIRECT alignment), one
// cudaMemcpy (device; CUDA builds).
[[nodiscard]] double ceiling_gbps(const Layout& src, const Layout& dst, std::size_t bytes);

// GB/s of one plain cudaMemcpyBatchAsync (one stream, default attributes) over the chunks of
// `pairs`: the baseline the copy-engine path must beat. Single-chunk blocks only.
[[nodiscard]] double plain_batch_gbps(const Layout& src, const Layout& dst, std::span<const BlockPair> pairs);

// The middle of the values (the upper one of an even count).
[[nodiscard]] double median(std::vector<double> values);
// "256K", "4M" or the byte count.
[[nodiscard]] std::string human_size(std::size_t bytes);

}  // namespace kvbm::tools
