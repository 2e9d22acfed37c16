// How the packed broadcast cuts a request: pieces that add up, never exceed the staging, and
// ramp from small to large and back.
#include <gtest/gtest.h>

#include <numeric>

#include "distributed/broadcast_pieces.hpp"

namespace kvbm {
namespace {

using Pieces = std::vector<std::size_t>;

TEST(BroadcastPieces, RampUpAndDownAroundLargestPieces) {
  // 8192 blocks, 2048 a piece at most, four halvings: 128 256 512 1024, the middle, and back.
  const Pieces pieces = broadcast_pieces(8192, 2048, 4);
  EXPECT_EQ(pieces, (Pieces{128, 256, 512, 1024, 1451, 1451, 1450, 1024, 512, 256, 128}));
}

TEST(BroadcastPieces, EveryCountAddsUpWithinTheLargest) {
  for (std::size_t largest : {1, 2, 3, 7, 64, 1000}) {
    for (unsigned ramp : {0U, 1U, 4U, 40U}) {
      for (std::size_t total = 0; total < 3000; total += 1 + total / 5) {
        const Pieces pieces = broadcast_pieces(total, largest, ramp);
        SCOPED_TRACE(testing::Message() << "total " << total << " largest " << largest << " ramp " << ramp);
        EXPECT_EQ(std::accumulate(pieces.begin(), pieces.end(), std::size_t{0}), total);
        for (std::size_t size : pieces) {
          EXPECT_GE(size, 1U);
          EXPECT_LE(size, largest);
        }
        // Never shrinking before the middle, never growing after it.
        const auto peak = std::max_element(pieces.begin(), pieces.end());
        EXPECT_TRUE(std::is_sorted(pieces.begin(), peak));
        EXPECT_TRUE(std::is_sorted(pieces.rbegin(), Pieces::const_reverse_iterator(peak)));
      }
    }
  }
}

TEST(BroadcastPieces, SmallRequestsAreOnePieceAndNoneIsEmpty) {
  EXPECT_EQ(broadcast_pieces(0, 64, 4), Pieces{});
  EXPECT_EQ(broadcast_pieces(9, 64, 4), Pieces{9});
  EXPECT_EQ(broadcast_pieces(9, 3, 0), (Pieces{3, 3, 3}));
  EXPECT_EQ(broadcast_pieces(10, 3, 0), (Pieces{3, 3, 2, 2}));
}

}  // namespace
}  // namespace kvbm
