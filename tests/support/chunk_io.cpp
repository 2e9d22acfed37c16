#include "support/chunk_io.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>


namespace kvbm::testing {

Bytes random_bytes(std::size_t n, std::mt19937_64& rng) {
  Bytes out(n);
  for (std::size_t i = 0; i < n; i += 8) {
    const std::uint64_t word = rng();
    std::memcpy(out.data() + i, &word, std::min<std::size_t>(8, n - i));
  }
  return out;
}

void poison(const Layout& layout, std::byte value) {
  const auto& config = layout.config();
  const Bytes filled(layout.chunk_bytes(), value);
  for (std::size_t b = 0; b < config.num_blocks; ++b) {
    for (std::size_t l = 0; l < config.num_layers; ++l) {
      for (std::size_t o = 0; o < config.outer_dim; ++o) write_chunk(layout, b, l, o, filled);
    }
  }
}

std::vector<std::vector<Bytes>> fill_random(const Layout& layout, const std::vector<std::size_t>& blocks,
                                            std::mt19937_64& rng) {
  const auto& config = layout.config();
  std::vector<std::vector<Bytes>> contents;
  for (std::size_t block : blocks) {
    auto& chunks = contents.emplace_back();
    for (std::size_t l = 0; l < config.num_layers; ++l) {
      for (std::size_t o = 0; o < config.outer_dim; ++o) {
        chunks.push_back(random_bytes(layout.chunk_bytes(), rng));
        write_chunk(layout, block, l, o, chunks.back());
      }
    }
  }
  return contents;
}

std::vector<std::size_t> scattered_blocks(std::size_t count, std::size_t num_blocks, std::mt19937_64& rng) {
  if (count * 2 > num_blocks + 1) throw std::runtime_error("not enough blocks to scatter");
  // Every other block, then a random subset of those, shuffled.
  std::vector<std::size_t> even;
  for (std::size_t b = 0; b < num_blocks; b += 2) even.push_back(b);
  std::shuffle(even.begin(), even.end(), rng);
  even.resize(count);
  return even;
}

}  // namespace kvbm::testing
