#include "support/chunk_io.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "kvbm/common/checked_math.hpp"
#ifdef KVBM_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace kvbm::testing {

Bytes random_bytes(std::size_t n, std::mt19937_64& rng) {
  Bytes out(n);
  for (std::size_t i = 0; i < n; i += 8) {
    const std::uint64_t word = rng();
    std::memcpy(out.data() + i, &word, std::min<std::size_t>(8, n - i));
  }
  return out;
}

namespace {
struct AlignedPage {
  explicit AlignedPage(std::size_t bytes)
      : data(static_cast<std::byte*>(std::aligned_alloc(kDirectIoAlignment, round_up(bytes, kDirectIoAlignment)))) {}
  ~AlignedPage() { std::free(data); }
  std::byte* data;
};
}  // namespace

Bytes read_chunk(const Layout& layout, std::size_t block, std::size_t layer, std::size_t outer) {
  const ChunkLocation chunk = layout.locate(block, layer, outer);
  Bytes out(chunk.bytes);
  const StorageKind kind = chunk.region->kind();
  if (kind.is_disk()) {
    AlignedPage page(chunk.bytes);
    const std::size_t io = round_up(chunk.bytes, kDirectIoAlignment);
    if (::pread(chunk.region->fd(), page.data, io, static_cast<off_t>(chunk.offset)) != static_cast<ssize_t>(io)) {
      throw std::runtime_error("test pread failed");
    }
    std::memcpy(out.data(), page.data, chunk.bytes);
  } else if (kind.is_device()) {
#ifdef KVBM_HAVE_CUDA
    if (cudaMemcpy(out.data(), chunk.region->data() + chunk.offset, chunk.bytes, cudaMemcpyDeviceToHost) != cudaSuccess) {
      throw std::runtime_error("test cudaMemcpy D2H failed");
    }
#endif
  } else {
    std::memcpy(out.data(), chunk.region->data() + chunk.offset, chunk.bytes);
  }
  return out;
}

void write_chunk(const Layout& layout, std::size_t block, std::size_t layer, std::size_t outer, const Bytes& bytes) {
  const ChunkLocation chunk = layout.locate(block, layer, outer);
  const StorageKind kind = chunk.region->kind();
  if (kind.is_disk()) {
    AlignedPage page(chunk.bytes);
    const std::size_t io = round_up(chunk.bytes, kDirectIoAlignment);
    std::memset(page.data, 0, io);
    std::memcpy(page.data, bytes.data(), chunk.bytes);
    if (::pwrite(chunk.region->fd(), page.data, io, static_cast<off_t>(chunk.offset)) != static_cast<ssize_t>(io)) {
      throw std::runtime_error("test pwrite failed");
    }
  } else if (kind.is_device()) {
#ifdef KVBM_HAVE_CUDA
    if (cudaMemcpy(chunk.region->data() + chunk.offset, bytes.data(), chunk.bytes, cudaMemcpyHostToDevice) != cudaSuccess) {
      throw std::runtime_error("test cudaMemcpy H2D failed");
    }
#endif
  } else {
    std::memcpy(chunk.region->data() + chunk.offset, bytes.data(), chunk.bytes);
  }
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
