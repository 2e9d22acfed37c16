#pragma once
// Test-side access to chunk bytes, independent of the transfer engine: memcpy for host memory,
// cudaMemcpy for device memory, aligned pread/pwrite on the O_DIRECT fd for disk.
#include <cstddef>
#include <random>
#include <vector>

#include "kvbm/layout/layout.hpp"

namespace kvbm::testing {

using Bytes = std::vector<std::byte>;

[[nodiscard]] Bytes random_bytes(std::size_t n, std::mt19937_64& rng);
[[nodiscard]] Bytes read_chunk(const Layout& layout, std::size_t block, std::size_t layer, std::size_t outer);
void write_chunk(const Layout& layout, std::size_t block, std::size_t layer, std::size_t outer, const Bytes& bytes);

// Fills every chunk of the layout with one byte value (the "poison").
void poison(const Layout& layout, std::byte value);
// Fills the given blocks with random bytes; returns them indexed [block][layer*outer + o].
std::vector<std::vector<Bytes>> fill_random(const Layout& layout, const std::vector<std::size_t>& blocks,
                                            std::mt19937_64& rng);

// `count` distinct block indices below `num_blocks`, shuffled, with no two adjacent.
[[nodiscard]] std::vector<std::size_t> scattered_blocks(std::size_t count, std::size_t num_blocks,
                                                        std::mt19937_64& rng);

}  // namespace kvbm::testing
