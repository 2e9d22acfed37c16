// TierPool: registry, holds, capacity accounting, eviction order and priorities, under both
// policies; and many threads at once (run under ThreadSanitizer by scripts/test --tsan).
#include "kvbm/manager/tier_pool.hpp"

#include <gtest/gtest.h>

#include <thread>

#include "kvbm/common/error.hpp"
#include "manager/request_model.hpp"

namespace kvbm {
namespace {

// Allocates one block, registers it as `hash` and lets it go: cached.
void cache(TierPool& pool, SequenceHash hash, int priority = 0) {
  auto blocks = pool.allocate(1);
  ASSERT_EQ(blocks.size(), 1u);
  ASSERT_TRUE(pool.register_block(blocks[0], hash, priority));
}

TEST(TierPool, RegisteredBlocksAreFoundAndHeldOnesNeverEvicted) {
  TierPool pool(Tier::Host, bookkeeping_layout(3), make_lru_policy());
  auto held = pool.allocate(1);
  EXPECT_FALSE(held[0].hash());
  ASSERT_TRUE(pool.register_block(held[0], 100));
  EXPECT_EQ(held[0].hash(), 100u);
  cache(pool, 200);
  cache(pool, 300);
  TierPoolStats stats = pool.stats();
  EXPECT_EQ(stats.capacity, 3u);
  EXPECT_EQ(stats.free, 0u);
  EXPECT_EQ(stats.held, 1u);
  EXPECT_EQ(stats.cached, 2u);
  EXPECT_EQ(stats.registered, 3u);
  // Asking for three takes only the two cached blocks: 100 is held.
  auto taken = pool.allocate(3);
  EXPECT_EQ(taken.size(), 2u);
  EXPECT_TRUE(pool.contains(100));
  EXPECT_FALSE(pool.contains(200));
  EXPECT_FALSE(pool.contains(300));
  EXPECT_EQ(pool.stats().evictions, 2u);
  EXPECT_TRUE(pool.allocate(1).empty());  // everything is held now
  taken.clear();                           // unregistered blocks go back to the free list
  EXPECT_EQ(pool.stats().free, 2u);
  EXPECT_FALSE(pool.acquire(200).has_value());
  auto again = pool.acquire(100);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->block(), held[0].block());
}

TEST(TierPool, LeastRecentlyReleasedGoesFirstAndLowerPriorityBeforeIt) {
  TierPool pool(Tier::Device, bookkeeping_layout(4), make_lru_policy());
  cache(pool, 1);
  cache(pool, 2, /*priority=*/5);
  cache(pool, 3);
  cache(pool, 4);
  (void)pool.acquire(1);  // used again and released: now the most recent of priority 0
  // Priority 0 first, oldest release first: 3, 4, 1; then priority 5: 2.
  std::vector<BlockHandle> taken;  // kept, so that each allocation must evict
  for (SequenceHash expected : {3u, 4u, 1u, 2u}) {
    auto block = pool.allocate(1);
    ASSERT_EQ(block.size(), 1u);
    taken.push_back(block[0]);
    EXPECT_FALSE(pool.contains(expected)) << expected;
  }
}

TEST(TierPool, ATailFirstReleaseKeepsThePrefixHeadLongest) {
  TierPool pool(Tier::Device, bookkeeping_layout(3), make_lru_policy());
  std::vector<BlockHandle> request = pool.allocate(3);
  for (std::size_t i = 0; i < request.size(); ++i) ASSERT_TRUE(pool.register_block(request[i], 10 + i));
  while (!request.empty()) request.pop_back();  // tail first
  (void)pool.allocate(1);
  EXPECT_FALSE(pool.contains(12));  // the tail went first
  EXPECT_TRUE(pool.contains(10));
}

TEST(TierPool, ARegisteredHashIsNotRegisteredTwice) {
  TierPool pool(Tier::Host, bookkeeping_layout(2), make_lru_policy());
  auto blocks = pool.allocate(2);
  EXPECT_TRUE(pool.register_block(blocks[0], 7));
  EXPECT_FALSE(pool.register_block(blocks[1], 7));
  EXPECT_THROW(pool.register_block(blocks[0], 8), Error);  // already registered
  TierPool other(Tier::Host, bookkeeping_layout(1), make_lru_policy());
  EXPECT_THROW(other.register_block(blocks[1], 9), Error);  // another pool's block
  blocks.clear();
  const TierPoolStats stats = pool.stats();
  EXPECT_EQ(stats.cached, 1u);
  EXPECT_EQ(stats.free, 1u);  // the duplicate went back
}

TEST(TierPool, FrequencyPolicyKeepsWhatIsAskedForOften) {
  TierPool pool(Tier::Device, bookkeeping_layout(3), make_frequency_policy());
  cache(pool, 1);
  cache(pool, 2);
  cache(pool, 3);
  for (int i = 0; i < 3; ++i) (void)pool.acquire(1);  // 1 asked for thrice, 3 once, 2 never
  (void)pool.acquire(3);
  const auto first = pool.allocate(1);
  EXPECT_FALSE(pool.contains(2));
  const auto second = pool.allocate(1);
  EXPECT_FALSE(pool.contains(3));
  EXPECT_TRUE(pool.contains(1));  // the most recently released, but kept for its count
}

TEST(TierPool, FrequencyCountsHalveSoOldFavouritesAgeOut) {
  // Counts halve every 4 lookups: hash 1's early popularity is gone by the time 2 is asked for.
  TierPool pool(Tier::Device, bookkeeping_layout(2), make_frequency_policy(1024, 4));
  cache(pool, 1);
  cache(pool, 2);
  for (int i = 0; i < 2; ++i) (void)pool.acquire(1);                  // count 2, then halved to 1
  for (int i = 0; i < 6; ++i) (void)pool.acquire(i % 2 ? 2 : 99);     // 2 reaches 3, halved to 1; 1 to 0
  (void)pool.allocate(1);
  EXPECT_FALSE(pool.contains(1));
  EXPECT_TRUE(pool.contains(2));
}

TEST(TierPool, ManyThreadsAllocateRegisterAcquireAndRelease) {
  TierPool pool(Tier::Host, bookkeeping_layout(64), make_frequency_policy());
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&pool, t] {
      for (int i = 0; i < 2000; ++i) {
        const SequenceHash hash = static_cast<SequenceHash>((t * 7919 + i) % 97);
        if (auto found = pool.acquire(hash)) {
          EXPECT_EQ(found->hash(), hash);
          continue;
        }
        auto blocks = pool.allocate(2);
        if (!blocks.empty()) (void)pool.register_block(blocks[0], hash);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  const TierPoolStats stats = pool.stats();
  EXPECT_EQ(stats.held, 0u);
  EXPECT_EQ(stats.free + stats.cached, 64u);
}

}  // namespace
}  // namespace kvbm
