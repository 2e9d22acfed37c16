#pragma once
// Where the replicated tests run their ranks, one process each. With a GPU per rank, rank r
// runs on GPU r. With fewer GPUs, ranks share them and each rank's process is given an NCCL
// host id of its own (NCCL_HOSTID): NCCL then takes the ranks for separate machines, which it
// allows on one GPU, and connects them with its socket transport on loopback. That is slow but
// it is the real communicator, so a one-GPU machine still runs every collective of the code.
#include <string>
#include <vector>

namespace kvbm::testing {

struct RankPlacement {
  int device = 0;
  std::vector<std::string> env;  // "NAME=VALUE" for the rank's process
  [[nodiscard]] std::string describe() const;
};

// `world` placements, or none when this machine has no GPU.
[[nodiscard]] std::vector<RankPlacement> place_ranks(int world);

}  // namespace kvbm::testing
