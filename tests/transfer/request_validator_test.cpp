// check_batch checks each batch just before it starts: it names the first bad pair by its place
// in the whole request, and finds a destination named again in a later batch; a request within
// one layout is checked whole by the constructor.
#include "transfer/engine/request_validator.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <string>

#include <fmt/format.h>

#include "kvbm/common/error.hpp"

namespace kvbm {
namespace {

constexpr std::size_t kBlocks = 5000;
constexpr std::size_t kScattered = 4000;  // scattered pairs name blocks below this
constexpr std::size_t kBatch = 1000;

LayoutPtr pool_of(std::size_t blocks) {
  const LayoutConfig config{.num_blocks = blocks, .num_layers = 1, .outer_dim = 1, .page_size = 1, .inner_dim = 16,
                            .dtype_bytes = 1};
  return Layout::allocate(config, StorageKind::system(), LayoutForm::FullyContiguous);
}

// Scattered pairs: distinct random sources and destinations below kScattered.
std::vector<BlockPair> scattered(std::size_t count, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::size_t> from(kScattered);
  std::vector<std::size_t> to(kScattered);
  std::iota(from.begin(), from.end(), 0);
  std::iota(to.begin(), to.end(), 0);
  std::shuffle(from.begin(), from.end(), rng);
  std::shuffle(to.begin(), to.end(), rng);
  std::vector<BlockPair> pairs;
  for (std::size_t i = 0; i < count; ++i) pairs.emplace_back(from[i], to[i]);
  return pairs;
}

class RequestValidatorTest : public ::testing::Test {
 protected:
  // The message of the error that checking `pairs` in batches of kBatch throws ("" when none).
  std::string check(const std::vector<BlockPair>& pairs) {
    RequestValidator validator(*src_, *dst_, pairs);
    try {
      for (std::size_t first = 0; first < pairs.size(); first += kBatch) {
        validator.check_batch(first, std::min(pairs.size(), first + kBatch));
      }
    } catch (const Error& error) {
      return error.message();
    }
    return "";
  }

  LayoutPtr src_ = pool_of(kBlocks);
  LayoutPtr dst_ = pool_of(kBlocks);
};

TEST_F(RequestValidatorTest, TheFirstBadPairIsNamedByItsPlaceInTheRequest) {
  const std::vector<BlockPair> good = scattered(3 * kBatch, 5);
  EXPECT_EQ(check(good), "");
  auto pairs = good;
  pairs[kBatch + 7].second = kBlocks + 3;
  EXPECT_EQ(check(pairs), fmt::format("destination block index {} (pair {}) is out of range: the destination has {} blocks",
                                      kBlocks + 3, kBatch + 7, kBlocks));
  pairs = good;
  pairs[2 * kBatch + 1].first = kBlocks;
  EXPECT_EQ(check(pairs),
            fmt::format("source block index {} (pair {}) is out of range: the source has {} blocks", kBlocks, 2 * kBatch + 1, kBlocks));
  pairs = good;
  pairs[20].second = pairs[10].second;
  EXPECT_EQ(check(pairs), fmt::format("destination block {} is named twice (pairs 10 and 20)", pairs[10].second));
  pairs = good;
  pairs[2 * kBatch + 5].second = pairs[kBatch - 1].second;  // again two batches later
  EXPECT_EQ(check(pairs), fmt::format("destination block {} is named twice (pairs {} and {})", pairs[kBatch - 1].second,
                                      kBatch - 1, 2 * kBatch + 5));
}

// Source and destination in one region: the constructor checks the whole request first (a
// destination named in a later batch is refused before any batch starts).
TEST_F(RequestValidatorTest, ARequestWithinOneLayoutIsCheckedWhole) {
  std::vector<BlockPair> pairs;
  for (std::size_t i = 0; i < 2 * kBatch; ++i) pairs.emplace_back(i, kBlocks / 2 + i);
  RequestValidator validator(*src_, *src_, pairs);
  validator.check_batch(0, kBatch);
  validator.check_batch(kBatch, 2 * kBatch);
  pairs[3].second = pairs[2 * kBatch - 1].second;
  try {
    RequestValidator twice(*src_, *src_, pairs);
    ADD_FAILURE() << "a destination named twice was not refused";
  } catch (const Error& error) {
    EXPECT_EQ(error.message(), fmt::format("destination block {} is named twice (pairs 3 and {})", pairs[3].second, 2 * kBatch - 1));
  }
}

}  // namespace
}  // namespace kvbm
