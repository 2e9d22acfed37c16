#pragma once
// Synchronous access to the bytes of one chunk or one whole block, whatever the storage:
// memcpy for host memory, cudaMemcpy for device memory, aligned pread/pwrite on the O_DIRECT
// file for disk. For verification and diagnostics (kvbm.fill / kvbm.hash, tests), not for the
// transfer hot path.
#include <cstddef>
#include <vector>

#include "kvbm/layout/layout.hpp"

namespace kvbm {

using Bytes = std::vector<std::byte>;

[[nodiscard]] Bytes read_chunk(const Layout& layout, std::size_t block, std::size_t layer, std::size_t outer);
void write_chunk(const Layout& layout, std::size_t block, std::size_t layer, std::size_t outer, const Bytes& bytes);

// A block is its chunks in (layer, outer) order.
[[nodiscard]] std::size_t block_bytes(const Layout& layout);
[[nodiscard]] Bytes read_block(const Layout& layout, std::size_t block);
void write_block(const Layout& layout, std::size_t block, const Bytes& bytes);

}  // namespace kvbm
