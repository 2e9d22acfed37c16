// kvbm_nccl_tests: the replicated-mode suite, whose ranks are processes of their own; the same
// binary started with --broadcast-rank is one of them.
#include <gtest/gtest.h>

#include <cstring>

#include "distributed/broadcast_rank.hpp"

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], kvbm::testing::kBroadcastRankFlag) == 0) {
    return kvbm::testing::broadcast_rank_main(argc, argv);
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
