#pragma once
// One rank of the packed broadcast test, as a process of its own (the test binary started again
// with --broadcast-rank): at every chunk size and layout form, rank 0's scattered blocks are
// broadcast in more pieces than the staging holds at once; every other rank starts from poison
// and checks that the moved blocks hold rank 0's bytes and the others still hold the poison.
#include <string>
#include <vector>

namespace kvbm::testing {

inline constexpr const char* kBroadcastRankFlag = "--broadcast-rank";

// The arguments after the program that make it run rank `rank` of `world` on `device`.
[[nodiscard]] std::vector<std::string> broadcast_rank_args(const std::string& nccl_id, int rank, int world, int device);

// Runs the rank from those arguments (argv[1] is the flag); the process's exit status: 0 when
// every block matched, 1 (with the first mismatch or error on stderr) when not.
int broadcast_rank_main(int argc, char** argv);

}  // namespace kvbm::testing
