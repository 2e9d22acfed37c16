#pragma once
// How often each hash was seen, estimated in fixed memory (TinyLFU's frequency sketch): four
// rows of 4-bit-range counters (saturating at 15), each hash counted in one counter a row, the
// estimate the smallest of the four. After `sample` increments every counter halves, so the
// counts follow what is popular now. Not thread-safe: its owner locks.
#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <vector>

#include "kvbm/manager/sequence_hash.hpp"

namespace kvbm {

class CountMinSketch {
 public:
  // Counters a row: the power of two at or above `capacity` (at least 64); sample: 10 x capacity.
  explicit CountMinSketch(std::size_t capacity)
      : width_(std::bit_ceil(std::max<std::size_t>(64, capacity))), sample_(10 * std::max<std::size_t>(64, capacity)),
        counters_(kRows * width_, 0) {}

  void increment(SequenceHash hash) {
    for (std::size_t row = 0; row < kRows; ++row) {
      std::uint8_t& counter = counters_[row * width_ + index(hash, row)];
      if (counter < kMax) ++counter;
    }
    if (++additions_ >= sample_) age();
  }

  [[nodiscard]] std::uint32_t estimate(SequenceHash hash) const {
    std::uint32_t least = kMax;
    for (std::size_t row = 0; row < kRows; ++row) {
      least = std::min<std::uint32_t>(least, counters_[row * width_ + index(hash, row)]);
    }
    return least;
  }

 private:
  static constexpr std::size_t kRows = 4;
  static constexpr std::uint8_t kMax = 15;
  static constexpr std::array<std::uint64_t, kRows> kSeeds = {0x9e3779b97f4a7c15ull, 0xc2b2ae3d27d4eb4full,
                                                              0x165667b19e3779f9ull, 0xd6e8feb86659fd93ull};

  // A row's counter for `hash`: the hash mixed with the row's seed (splitmix64's finaliser).
  [[nodiscard]] std::size_t index(SequenceHash hash, std::size_t row) const {
    std::uint64_t x = hash ^ kSeeds[row];
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    x ^= x >> 31;
    return static_cast<std::size_t>(x & (width_ - 1));
  }

  void age() {
    for (std::uint8_t& counter : counters_) counter /= 2;
    additions_ /= 2;
  }

  const std::size_t width_;
  const std::uint64_t sample_;
  std::vector<std::uint8_t> counters_;
  std::uint64_t additions_ = 0;
};

}  // namespace kvbm
