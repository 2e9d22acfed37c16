#include "support/rank_placement.hpp"

#include "platform/cuda_runtime.hpp"

namespace kvbm::testing {

std::string RankPlacement::describe() const {
  std::string text = "device " + std::to_string(device);
  for (const auto& entry : env) text += " " + entry;
  return text;
}

std::vector<RankPlacement> place_ranks(int world) {
  const int gpus = cuda::device_count();
  std::vector<RankPlacement> placements;
  if (gpus == 0) return placements;
  for (int rank = 0; rank < world; ++rank) {
    RankPlacement placement{.device = rank % gpus};
    if (gpus < world) {
      placement.env = {"NCCL_HOSTID=kvbm-test-rank-" + std::to_string(rank), "NCCL_SOCKET_IFNAME=lo",
                       "NCCL_IB_DISABLE=1"};
    }
    placements.push_back(placement);
  }
  return placements;
}

}  // namespace kvbm::testing
