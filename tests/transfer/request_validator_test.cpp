// A request's check gives the same answer, and names the same pair, whether a batch is checked
// on the submitting thread alone or in chunks shared with a pool's threads; and it counts the
// pairs that continue a run, which decides how a batch is copied.
#include "transfer/engine/request_validator.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <string>

#include <fmt/format.h>

#include "common/thread_pool.hpp"
#include "kvbm/common/error.hpp"

namespace kvbm {
namespace {

constexpr std::size_t kBlocks = 50000;
constexpr std::size_t kRunsFrom = 40000;  // blocks [kRunsFrom, kBlocks) are left to runs
constexpr std::size_t kBatch = 4 * RequestValidator::kChunkPairs;  // four chunks

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

class RequestValidatorTest : public ::testing::Test {
 protected:
  // The message of the error that checking `pairs` in batches of kBatch throws ("" when none),
  // and the continuing pairs counted; with the pool's threads or without.
  std::string check(const std::vector<BlockPair>& pairs, bool shared, std::size_t* continuing = nullptr) {
    RequestValidator validator(*src_, *dst_, pairs, shared ? &pool_ : nullptr, shared ? pool_.size() : 0);
    std::size_t counted = 0;
    try {
      for (std::size_t first = 0; first < pairs.size(); first += kBatch) {
        counted += validator.check_batch(first, std::min(pairs.size(), first + kBatch));
      }
    } catch (const Error& error) {
      return error.message();
    }
    if (continuing) *continuing = counted;
    return "";
  }

  // The same error whichever way the batches are checked, and it names `expected`.
  void expect_refused(const std::vector<BlockPair>& pairs, const std::string& expected) {
    const std::string alone = check(pairs, false);
    EXPECT_NE(alone.find(expected), std::string::npos) << alone;
    EXPECT_EQ(check(pairs, true), alone);
  }

  ThreadPool pool_{3};
  LayoutPtr src_ = pool_of(kBlocks);
  LayoutPtr dst_ = pool_of(kBlocks);
};

TEST_F(RequestValidatorTest, SharedChunksPassAGoodRequestAndCountItsRunsAsOneThreadDoes) {
  std::vector<BlockPair> pairs = scattered(2 * kBatch, 3);
  // A run of 1000 adjacent pairs across the first batch's chunk boundary, one at the start of
  // the second batch (its first pair continues nothing in its batch).
  for (std::size_t i = 0; i < 1000; ++i) pairs[RequestValidator::kChunkPairs - 500 + i] = {kRunsFrom + i, kRunsFrom + i};
  for (std::size_t i = 0; i < 10; ++i) pairs[kBatch + i] = {kBlocks - 10 + i, kBlocks - 10 + i};
  std::size_t alone = 0;
  std::size_t shared = 0;
  ASSERT_EQ(check(pairs, false, &alone), "");
  ASSERT_EQ(check(pairs, true, &shared), "");
  // Scattered neighbours may continue each other by chance; the runs always do.
  EXPECT_GE(alone, 999u + 9u);
  EXPECT_EQ(shared, alone);
}

TEST_F(RequestValidatorTest, SharedChunksNameTheFirstBadPairAsOneThreadDoes) {
  const std::vector<BlockPair> good = scattered(2 * kBatch, 5);
  const std::size_t chunk = RequestValidator::kChunkPairs;
  auto pairs = good;
  pairs[chunk + 7].second = kBlocks + 3;  // out of range, in the first batch's second chunk
  expect_refused(pairs, fmt::format("destination block index {} (pair {})", kBlocks + 3, chunk + 7));
  pairs = good;
  pairs[kBatch + 3 * chunk + 1].first = kBlocks;  // in the second batch's last chunk
  expect_refused(pairs, fmt::format("source block index {} (pair {})", kBlocks, kBatch + 3 * chunk + 1));
  pairs = good;
  pairs[10].second = pairs[20].second;  // twice within one chunk
  expect_refused(pairs, fmt::format("destination block {} is named twice (pairs 10 and 20)", pairs[20].second));
  pairs = good;
  pairs[3 * chunk + 2].second = pairs[chunk + 9].second;  // in two chunks of one batch
  expect_refused(pairs, fmt::format("destination block {} is named twice (pairs {} and {})", pairs[chunk + 9].second,
                                    chunk + 9, 3 * chunk + 2));
  pairs = good;
  pairs[kBatch + 5].second = pairs[2 * chunk].second;  // again in a later batch
  expect_refused(pairs, fmt::format("destination block {} is named twice (pairs {} and {})", pairs[2 * chunk].second,
                                    2 * chunk, kBatch + 5));
}

// A destination pool far larger than a batch is checked on the submitting thread (clearing and
// merging marks for every block would cost more than the pairs): the answers stay the same.
TEST_F(RequestValidatorTest, ADestinationPoolMuchLargerThanTheBatchGivesTheSameAnswers) {
  dst_ = pool_of(64 * kBatch * 64);
  const std::vector<BlockPair> good = scattered(kBatch, 9);
  EXPECT_EQ(check(good, true), "");
  auto pairs = good;
  pairs[kBatch - 1].second = pairs[0].second;
  expect_refused(pairs, fmt::format("destination block {} is named twice (pairs 0 and {})", pairs[0].second, kBatch - 1));
}

}  // namespace
}  // namespace kvbm
