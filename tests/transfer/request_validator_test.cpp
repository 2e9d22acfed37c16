// check_batch checks each batch in one pass: it names the first bad pair by its place in the
// whole request, finds a destination named again in a later batch, and counts the pairs that
// continue a run within the batch, which decides how the batch is copied.
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
constexpr std::size_t kRunsFrom = 4000;  // blocks [kRunsFrom, kBlocks) are left to runs
constexpr std::size_t kBatch = 1000;

LayoutPtr pool_of(std::size_t blocks) {
  const LayoutConfig config{.num_blocks = blocks, .num_layers = 1, .outer_dim = 1, .page_size = 1, .inner_dim = 16,
                            .dtype_bytes = 1};
  return Layout::allocate(config, StorageKind::system(), LayoutForm::FullyContiguous);
}

// Scattered pairs: distinct random sources and destinations below kRunsFrom.
std::vector<BlockPair> scattered(std::size_t count, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::size_t> from(kRunsFrom);
  std::vector<std::size_t> to(kRunsFrom);
  std::iota(from.begin(), from.end(), 0);
  std::iota(to.begin(), to.end(), 0);
  std::shuffle(from.begin(), from.end(), rng);
  std::shuffle(to.begin(), to.end(), rng);
  std::vector<BlockPair> pairs;
  for (std::size_t i = 0; i < count; ++i) pairs.emplace_back(from[i], to[i]);
  return pairs;
}

// How many pairs continue the one before them, counted by hand.
std::size_t runs_in(std::span<const BlockPair> pairs) {
  std::size_t continuing = 0;
  for (std::size_t i = 1; i < pairs.size(); ++i) {
    continuing += pairs[i].first == pairs[i - 1].first + 1 && pairs[i].second == pairs[i - 1].second + 1;
  }
  return continuing;
}

class RequestValidatorTest : public ::testing::Test {
 protected:
  // The message of the error that checking `pairs` in batches of kBatch throws ("" when none).
  std::string check(const std::vector<BlockPair>& pairs, std::vector<std::size_t>* continuing = nullptr) {
    RequestValidator validator(*src_, *dst_, pairs);
    try {
      for (std::size_t first = 0; first < pairs.size(); first += kBatch) {
        const std::size_t counted = validator.check_batch(first, std::min(pairs.size(), first + kBatch));
        if (continuing) continuing->push_back(counted);
      }
    } catch (const Error& error) {
      return error.message();
    }
    return "";
  }

  LayoutPtr src_ = pool_of(kBlocks);
  LayoutPtr dst_ = pool_of(kBlocks);
};

TEST_F(RequestValidatorTest, EachBatchCountsTheRunsWithinIt) {
  std::vector<BlockPair> pairs = scattered(3 * kBatch, 3);
  // A run of 300 pairs across the first two batches' boundary, and one of 11 across the second
  // and third: in the third batch its first pair continues the second batch's last, which is
  // not in its batch, so 9 pairs continue there.
  for (std::size_t i = 0; i < 300; ++i) pairs[kBatch - 100 + i] = {kRunsFrom + i, kRunsFrom + i};
  for (std::size_t i = 0; i < 11; ++i) pairs[2 * kBatch - 1 + i] = {kRunsFrom + 500 + i, kRunsFrom + 500 + i};
  std::vector<std::size_t> continuing;
  ASSERT_EQ(check(pairs, &continuing), "");
  ASSERT_EQ(continuing.size(), 3u);
  for (std::size_t batch = 0; batch < 3; ++batch) {
    EXPECT_EQ(continuing[batch], runs_in(std::span(pairs).subspan(batch * kBatch, kBatch))) << "batch " << batch;
  }
  EXPECT_GE(continuing[0], 99u);
  EXPECT_GE(continuing[1], 199u);
  EXPECT_GE(continuing[2], 9u);
}

TEST_F(RequestValidatorTest, TheFirstBadPairIsNamedByItsPlaceInTheRequest) {
  const std::vector<BlockPair> good = scattered(3 * kBatch, 5);
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

// Source and destination in one region: the constructor checks the whole request first, and
// the batches are then only counted.
TEST_F(RequestValidatorTest, ARequestWithinOneLayoutIsCheckedWholeAndStillCounted) {
  std::vector<BlockPair> pairs;
  for (std::size_t i = 0; i < 2 * kBatch; ++i) pairs.emplace_back(i, kBlocks / 2 + i);
  RequestValidator validator(*src_, *src_, pairs);
  EXPECT_EQ(validator.check_batch(0, kBatch), kBatch - 1);
  EXPECT_EQ(validator.check_batch(kBatch, 2 * kBatch), kBatch - 1);
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
