// Each eviction policy on small hand-made request streams whose answer is known, through a real
// TierPool: which block goes, which stays, what a lower tier admits. Then the prefix invariant
// as a property: under random request streams no cached block ever lacks its cached parent.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "kvbm/manager/tier_pool.hpp"
#include "manager/request_model.hpp"

namespace kvbm {
namespace {

// The replay model's request: its cached prefix held, the rest registered, everything let go
// last first. Returns the prefix's length.
std::size_t request(TierPool& pool, const std::vector<SequenceHash>& hashes) {
  HeldRequest held = hold_request(pool, hashes);
  release_tail_first(held.blocks);
  return held.hits;
}

// Registers `hashes` as one request would, but lets them go first block first, as a write-through
// batch into a lower tier does: recency then says the root is the oldest.
void write_through(TierPool& pool, const std::vector<SequenceHash>& hashes) {
  pool.note_request(hashes);
  auto blocks = pool.allocate(hashes.size());
  ASSERT_EQ(blocks.size(), hashes.size());
  for (std::size_t i = 0; i < hashes.size(); ++i) ASSERT_TRUE(pool.register_block(blocks[i], hashes[i]));
  for (auto& block : blocks) block = {};
}

// The block evicted when one more is taken from a full pool (and kept, held, until the pool goes).
std::optional<SequenceHash> evicts_next(TierPool& pool, const std::vector<SequenceHash>& registered) {
  static std::vector<BlockHandle> taken;
  std::set<SequenceHash> before;
  for (SequenceHash hash : registered) {
    if (pool.contains(hash)) before.insert(hash);
  }
  auto block = pool.allocate(1);
  if (block.empty()) return std::nullopt;
  taken.push_back(block.front());
  for (SequenceHash hash : before) {
    if (!pool.contains(hash)) return hash;
  }
  return std::nullopt;
}

TEST(EvictionPolicies, PrefixEvictsTheLeafWhereRecencyWouldCutTheRoot) {
  const std::vector<SequenceHash> chain = {1, 2, 3};
  TierPool lru(Tier::Host, bookkeeping_layout(3), make_lru_policy());
  write_through(lru, chain);
  EXPECT_EQ(evicts_next(lru, chain), 1u) << "recency: the root went first";
  TierPool prefix(Tier::Host, bookkeeping_layout(3), make_prefix_policy());
  write_through(prefix, chain);
  EXPECT_EQ(evicts_next(prefix, chain), 3u);
  EXPECT_EQ(evicts_next(prefix, chain), 2u);
  EXPECT_EQ(evicts_next(prefix, chain), 1u);
}

TEST(EvictionPolicies, PrefixFrequencyKeepsWhatIsRequestedOftenOverWhatWasReleasedLast) {
  TierPool pool(Tier::Host, bookkeeping_layout(2), make_prefix_frequency_policy(1000));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(request(pool, {10}), i == 0 ? 0u : 1u);
  EXPECT_EQ(request(pool, {20}), 0u);  // released after 10, requested once
  EXPECT_EQ(evicts_next(pool, {10, 20}), 20u);
  // LRU, the same stream: the block released first goes.
  TierPool lru(Tier::Host, bookkeeping_layout(2), make_lru_policy());
  for (int i = 0; i < 3; ++i) (void)request(lru, {10});
  (void)request(lru, {20});
  EXPECT_EQ(evicts_next(lru, {10, 20}), 10u);
}

TEST(EvictionPolicies, PrefixFrequencyForgetsOldPopularityByItsHalfLife) {
  // Half-life of one request: 10's three requests long ago weigh less than 20's one just now.
  TierPool pool(Tier::Host, bookkeeping_layout(2), make_prefix_frequency_policy(1));
  for (int i = 0; i < 3; ++i) (void)request(pool, {10});
  for (int i = 0; i < 5; ++i) pool.note_request(std::vector<SequenceHash>{99});  // time passes
  (void)request(pool, {20});
  EXPECT_EQ(evicts_next(pool, {10, 20}), 10u);
}

TEST(EvictionPolicies, TinyLfuKeepsAFrequentBlockAgainstANewOneAndAdmitsByFrequency) {
  // 100 blocks: a window of 1. Block 7 requested often; then 99 blocks seen once each fill the
  // tier; the next block evicts one of those, never 7.
  TierPool pool(Tier::Host, bookkeeping_layout(100), make_tinylfu_policy(100));
  for (int i = 0; i < 5; ++i) (void)request(pool, {7});
  for (SequenceHash hash = 1000; hash < 1099; ++hash) (void)request(pool, {hash});
  for (SequenceHash hash = 2000; hash < 2050; ++hash) {
    (void)request(pool, {hash});
    ASSERT_TRUE(pool.contains(7)) << "the frequent block was evicted by a block seen once (" << hash << ")";
  }
  // Admission: a block never requested does not get in; one requested more often than the victim does.
  EXPECT_FALSE(pool.admits(5000));
  for (int i = 0; i < 6; ++i) pool.note_request(std::vector<SequenceHash>{6000});
  EXPECT_TRUE(pool.admits(6000));
}

TEST(EvictionPolicies, LruAdmitsEverythingAndNoPolicyRefusesWhileBlocksAreFree) {
  TierPool lru(Tier::Host, bookkeeping_layout(1), make_lru_policy());
  (void)request(lru, {1});
  EXPECT_TRUE(lru.admits(2));
  TierPool tiny(Tier::Host, bookkeeping_layout(2), make_tinylfu_policy(2));
  (void)request(tiny, {1});
  EXPECT_TRUE(tiny.admits(5000)) << "a free block is there";
}

TEST(EvictionPolicies, S3FifoSurvivesAScanThatFlushesLru) {
  // 20 blocks (a small FIFO of 2): block 1 used twice, then a scan of 100 blocks seen once.
  const auto scan = [](TierPool& pool) {
    (void)request(pool, {1});
    (void)request(pool, {1});
    for (SequenceHash hash = 100; hash < 200; ++hash) (void)request(pool, {hash});
    return pool.contains(1);
  };
  TierPool s3fifo(Tier::Host, bookkeeping_layout(20), make_s3fifo_policy(20));
  EXPECT_TRUE(scan(s3fifo));
  TierPool lru(Tier::Host, bookkeeping_layout(20), make_lru_policy());
  EXPECT_FALSE(scan(lru));
}

TEST(EvictionPolicies, S3FifoSendsAGhostStraightToMain) {
  // A block evicted from the small FIFO unused is remembered; registered again, it skips the
  // small FIFO, so a following scan of new blocks does not push it out first.
  TierPool pool(Tier::Host, bookkeeping_layout(10), make_s3fifo_policy(10));
  (void)request(pool, {1});
  for (SequenceHash hash = 100; hash < 110; ++hash) (void)request(pool, {hash});
  ASSERT_FALSE(pool.contains(1));
  (void)request(pool, {1});  // back from the ghost list: into main
  for (SequenceHash hash = 200; hash < 208; ++hash) (void)request(pool, {hash});
  EXPECT_TRUE(pool.contains(1));
}

TEST(EvictionPolicies, PrioritiesComeFirstInEveryPolicy) {
  for (EvictionPolicyKind kind : all_eviction_policies()) {
    SCOPED_TRACE(std::string(to_string(kind)));
    TierPool pool(Tier::Host, bookkeeping_layout(2), make_eviction_policy(kind, 2));
    auto blocks = pool.allocate(2);
    pool.note_request(std::vector<SequenceHash>{1});
    ASSERT_TRUE(pool.register_block(blocks[0], 1, /*priority=*/5));
    pool.note_request(std::vector<SequenceHash>{2});
    ASSERT_TRUE(pool.register_block(blocks[1], 2, /*priority=*/0));
    blocks.clear();
    EXPECT_EQ(evicts_next(pool, {1, 2}), 2u);
  }
}

// Random request streams over a random prefix tree: each request extends a random earlier
// sequence (or starts a new one) and releases its blocks in a random order (as write-through
// batches and concurrent holders may); some requests stay held across later ones. After every
// request, every cached block whose parent is known has that parent cached.
std::size_t orphans_after_random_stream(EvictionPolicyKind kind, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  TierPool pool(Tier::Host, bookkeeping_layout(40), make_eviction_policy(kind, 40));
  std::vector<std::vector<SequenceHash>> sequences;
  std::map<SequenceHash, SequenceHash> parent;
  SequenceHash next = 1;
  std::vector<std::vector<BlockHandle>> in_flight;
  std::size_t orphans = 0;
  for (int step = 0; step < 1500; ++step) {
    std::vector<SequenceHash> hashes;
    if (!sequences.empty() && rng() % 4 != 0) {
      const auto& base = sequences[rng() % sequences.size()];
      hashes.assign(base.begin(), base.begin() + static_cast<std::ptrdiff_t>(1 + rng() % base.size()));
    }
    for (std::size_t extra = 1 + rng() % 4; extra > 0; --extra) {
      if (!hashes.empty()) parent[next] = hashes.back();
      hashes.push_back(next++);
    }
    sequences.push_back(hashes);
    std::vector<BlockHandle> held = hold_request(pool, hashes).blocks;
    std::shuffle(held.begin(), held.end(), rng);
    if (rng() % 5 == 0) in_flight.push_back(std::move(held));  // stays held for a while
    if (in_flight.size() > 2 || (!in_flight.empty() && rng() % 3 == 0)) in_flight.erase(in_flight.begin());
    held.clear();  // released in the shuffled order
    for (const auto& [child, up] : parent) {
      if (pool.contains(child) && !pool.contains(up)) ++orphans;
    }
  }
  return orphans;
}

TEST(EvictionPolicies, PropertyNoCachedBlockEverLacksItsCachedParent) {
  for (std::uint64_t seed = 1; seed <= 4; ++seed) {
    SCOPED_TRACE(seed);
    EXPECT_EQ(orphans_after_random_stream(EvictionPolicyKind::Prefix, seed), 0u);
    EXPECT_EQ(orphans_after_random_stream(EvictionPolicyKind::PrefixFrequency, seed), 0u);
  }
  // The check is real: recency alone, on the same streams, does cut prefixes.
  EXPECT_GT(orphans_after_random_stream(EvictionPolicyKind::Lru, 1), 0u);
}

}  // namespace
}  // namespace kvbm
