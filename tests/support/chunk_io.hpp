#pragma once
// Test data for layouts: random and poisoned chunks, scattered block indices. Chunk bytes are
// read and written with layout/chunk_io (plain memcpy, cudaMemcpy or pread/pwrite), never
// through the transfer engine under test.
#include <cstddef>
#include <random>
#include <vector>

#include "kvbm/layout/layout.hpp"
#include "layout/chunk_io.hpp"

namespace kvbm::testing {

using kvbm::Bytes;
using kvbm::read_chunk;
using kvbm::write_chunk;

[[nodiscard]] Bytes random_bytes(std::size_t n, std::mt19937_64& rng);

// Fills every chunk of the layout with one byte value (the "poison").
void poison(const Layout& layout, std::byte value);
// Fills the given blocks with random bytes; returns them indexed [block][layer*outer + o].
std::vector<std::vector<Bytes>> fill_random(const Layout& layout, const std::vector<std::size_t>& blocks,
                                            std::mt19937_64& rng);

// `count` distinct block indices below `num_blocks`, shuffled, with no two adjacent.
[[nodiscard]] std::vector<std::size_t> scattered_blocks(std::size_t count, std::size_t num_blocks,
                                                        std::mt19937_64& rng);

}  // namespace kvbm::testing
