// Sequence hashes: known answers computed independently (Python's xxhash 3.x, xxh3_64 with the
// seed, over the same little-endian bytes), so a change to the byte layout or the seeding fails.
#include "kvbm/manager/sequence_hash.hpp"

#include <gtest/gtest.h>

#include <numeric>

#include "kvbm/common/error.hpp"

namespace kvbm {
namespace {

std::vector<std::uint32_t> tokens_1_to_32() {
  std::vector<std::uint32_t> tokens(32);
  std::iota(tokens.begin(), tokens.end(), 1u);
  return tokens;
}

TEST(SequenceHash, KnownAnswersWithoutSalt) {
  const auto tokens = tokens_1_to_32();
  EXPECT_EQ(block_hash(std::span(tokens).subspan(0, 4), 0), 0x6fc1ebd4f4d6ea31ull);
  EXPECT_EQ(block_hash(std::span(tokens).subspan(4, 4), 0), 0xc03f64119f038920ull);
  const auto hashes = sequence_hashes(tokens, 4, 0);
  ASSERT_EQ(hashes.size(), 8u);
  EXPECT_EQ(hashes[0], 0x6fc1ebd4f4d6ea31ull);  // block 0: its block hash
  EXPECT_EQ(hashes[1], 0x3a14937fd5340c7aull);
  EXPECT_EQ(hashes[2], 0x829711b6d52f08ebull);
  EXPECT_EQ(hashes[7], 0xc2b5a85302e6ef18ull);
}

TEST(SequenceHash, KnownAnswersWithSalt) {
  const auto tokens = tokens_1_to_32();
  const std::uint64_t salt = salt_hash("tenant-a");
  EXPECT_EQ(salt, 0x635c5bebe6e5f781ull);
  EXPECT_EQ(salt_hash(""), 0u);
  const auto hashes = sequence_hashes(std::span(tokens).subspan(0, 8), 4, salt);
  ASSERT_EQ(hashes.size(), 2u);
  EXPECT_EQ(hashes[0], 0xb17b9ae7206a58a1ull);
  EXPECT_EQ(hashes[1], 0x0a139c7a0eb84b4full);
}

TEST(SequenceHash, OnlyFullBlocksAndPrefixesAgree) {
  const auto tokens = tokens_1_to_32();
  EXPECT_EQ(sequence_hashes(std::span(tokens).subspan(0, 11), 4, 0).size(), 2u);
  const auto full = sequence_hashes(tokens, 4, 0);
  const auto prefix = sequence_hashes(std::span(tokens).subspan(0, 12), 4, 0);
  EXPECT_TRUE(std::equal(prefix.begin(), prefix.end(), full.begin()));
  // A different first block changes every later sequence hash (the chain), not only its own.
  auto other = tokens;
  other[0] = 999;
  const auto changed = sequence_hashes(other, 4, 0);
  for (std::size_t i = 0; i < full.size(); ++i) EXPECT_NE(changed[i], full[i]) << i;
  EXPECT_THROW((void)sequence_hashes(tokens, 0, 0), Error);
}

}  // namespace
}  // namespace kvbm
